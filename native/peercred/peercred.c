/*
 * peercred: SO_PEERCRED for a connected Unix domain socket (Linux).
 *
 * Node.js exposes no API for the credentials the kernel records for the peer
 * of an AF_UNIX socket, and `writ agent` needs them to attest Workload API
 * callers (SPIFFE Workload Endpoint §5: "kernel introspection ... MUST NOT
 * require the workload to actively participate"). See socket(7), unix(7).
 *
 * The kernel captures pid/uid/gid when the client calls connect(2) (or
 * socketpair(2)), so the values describe the peer at connect time, not now.
 *
 * Exports: peerCredentials(fd: number) -> { pid, uid, gid }
 * Plain C N-API (no node-addon-api dependency), NAPI_VERSION 8 (Node >= 12.22).
 */
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#define CHECK(env, call)                                                   \
  do {                                                                     \
    if ((call) != napi_ok) {                                               \
      napi_throw_error((env), "ERR_PEERCRED_NAPI", "N-API call failed: " #call); \
      return NULL;                                                         \
    }                                                                      \
  } while (0)

static napi_value set_number(napi_env env, napi_value obj, const char *key, double v) {
  napi_value n;
  CHECK(env, napi_create_double(env, v, &n));
  CHECK(env, napi_set_named_property(env, obj, key, n));
  return obj;
}

static napi_value peer_credentials(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) {
    napi_throw_type_error(env, "ERR_PEERCRED_ARG", "peerCredentials(fd): fd is required");
    return NULL;
  }
  napi_valuetype type;
  CHECK(env, napi_typeof(env, argv[0], &type));
  if (type != napi_number) {
    napi_throw_type_error(env, "ERR_PEERCRED_ARG", "peerCredentials(fd): fd must be a number");
    return NULL;
  }
  int32_t fd;
  CHECK(env, napi_get_value_int32(env, argv[0], &fd));
  if (fd < 0) {
    napi_throw_range_error(env, "ERR_PEERCRED_ARG", "peerCredentials(fd): fd must be >= 0");
    return NULL;
  }

  /* Linux answers SO_PEERCRED on TCP sockets too (with no real peer), so
   * insist on AF_UNIX rather than trusting the caller to pass the right fd. */
  int domain = 0;
  socklen_t dlen = sizeof domain;
  if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &dlen) != 0) {
    int err = errno;
    char msg[256];
    snprintf(msg, sizeof msg, "getsockopt(%d, SOL_SOCKET, SO_DOMAIN) failed: %s (errno %d)",
             fd, strerror(err), err);
    napi_throw_error(env, "ERR_PEERCRED_GETSOCKOPT", msg);
    return NULL;
  }
  if (domain != AF_UNIX) {
    char msg[128];
    snprintf(msg, sizeof msg, "fd %d is not a Unix domain socket (domain %d)", fd, domain);
    napi_throw_error(env, "ERR_PEERCRED_NOT_UNIX", msg);
    return NULL;
  }

  struct ucred cred;
  socklen_t len = sizeof cred;
  memset(&cred, 0, sizeof cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    int err = errno;
    char msg[256];
        snprintf(msg, sizeof msg, "getsockopt(%d, SOL_SOCKET, SO_PEERCRED) failed: %s (errno %d)",
             fd, strerror(err), err);
    napi_throw_error(env, "ERR_PEERCRED_GETSOCKOPT", msg);
    return NULL;
  }
  if (len != sizeof cred) {
    napi_throw_error(env, "ERR_PEERCRED_GETSOCKOPT", "getsockopt(SO_PEERCRED) returned a short struct ucred");
    return NULL;
  }

  napi_value obj;
  CHECK(env, napi_create_object(env, &obj));
  /* uid_t/gid_t are 32-bit unsigned: a double holds them exactly. */
  if (set_number(env, obj, "pid", (double)cred.pid) == NULL) return NULL;
  if (set_number(env, obj, "uid", (double)cred.uid) == NULL) return NULL;
  if (set_number(env, obj, "gid", (double)cred.gid) == NULL) return NULL;
  return obj;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  CHECK(env, napi_create_function(env, "peerCredentials", NAPI_AUTO_LENGTH, peer_credentials, NULL, &fn));
  CHECK(env, napi_set_named_property(env, exports, "peerCredentials", fn));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
