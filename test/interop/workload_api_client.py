#!/usr/bin/env python3
"""A SPIFFE Workload API client Writ did not write: Debian's grpcio with the proto compiled by
grpc_tools, Python's cryptography and ssl for X.509-SVIDs, PyJWT for JWT-SVIDs.

    workload_api_client.py SOCKET x509                 first X509SVIDResponse, each SVID checked
    workload_api_client.py SOCKET x509-stream          every X509SVIDResponse, one JSON line each
    workload_api_client.py SOCKET bundles              first X509BundlesResponse
    workload_api_client.py SOCKET jwt AUDIENCE         FetchJWTSVID, then ValidateJWTSVID and PyJWT
    workload_api_client.py SOCKET no-header            FetchX509SVID without the security header

Prints one JSON object per line; a gRPC error as {"error": "<StatusCode name>", "details": ...}.
"""
import json
import os
import ssl
import sys
import tempfile

import grpc
import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from grpc_tools import protoc

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_DIR = os.path.join(HERE, "..", "..", "proto")
HEADER = [("workload.spiffe.io", "true")]


def compiled():
    """workload_pb2 and workload_pb2_grpc, compiled from the repository's proto into a temp dir."""
    out = tempfile.mkdtemp(prefix="writ-proto-")
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    rc = protoc.main(["protoc", f"-I{PROTO_DIR}/spiffe/workload", f"-I{include}", f"--python_out={out}", f"--grpc_python_out={out}", "workload.proto"])
    if rc != 0:
        raise SystemExit(f"protoc failed: {rc}")
    sys.path.insert(0, out)
    import workload_pb2, workload_pb2_grpc  # noqa: E402
    return workload_pb2, workload_pb2_grpc


def split_der(blob):
    """Concatenated DER certificates (the Workload API's x509_svid and bundle) into a list."""
    certs, i = [], 0
    while i < len(blob):
        if blob[i] != 0x30:
            raise ValueError("not a DER SEQUENCE")
        first = blob[i + 1]
        if first < 0x80:
            length, header = first, 2
        else:
            n = first & 0x7F
            length, header = int.from_bytes(blob[i + 2:i + 2 + n], "big"), 2 + n
        certs.append(x509.load_der_x509_certificate(blob[i:i + header + length]))
        i += header + length
    return certs


def spiffe_id_of(cert):
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return san.get_values_for_type(x509.UniformResourceIdentifier)


def tls_verified(chain, key, bundle):
    """A TLS handshake in memory: a server presenting the SVID and its key, a client trusting only the bundle (ssl module)."""
    d = tempfile.mkdtemp(prefix="writ-svid-")
    cert_path, key_path, ca_path = (os.path.join(d, n) for n in ("svid.pem", "key.pem", "bundle.pem"))
    with open(cert_path, "wb") as f:
        f.write(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with open(ca_path, "wb") as f:
        f.write(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in bundle))
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert_path, key_path)
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.check_hostname = False  # an X.509-SVID names a SPIFFE ID (a URI SAN), not a host
    client_ctx.verify_mode = ssl.CERT_REQUIRED
    client_ctx.load_verify_locations(ca_path)
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_ctx.wrap_bio(c_in, c_out, server_side=False)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(20):
        for name, side in (("client", client), ("server", server)):
            if done[name]:
                continue
            try:
                side.do_handshake()
                done[name] = True
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            return True
    return False


def describe_x509(resp):
    out = []
    for s in resp.svids:
        chain = split_der(s.x509_svid)
        bundle = split_der(s.bundle)
        key = serialization.load_der_private_key(s.x509_svid_key, password=None)
        matches = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) == chain[0].public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        out.append({
            "spiffe_id": s.spiffe_id,
            "uri_sans": spiffe_id_of(chain[0]),
            "serial": format(chain[0].serial_number, "x"),
            "key_matches": matches,
            "tls_verified": tls_verified(chain, key, bundle),
            "bundle_size": len(bundle),
        })
    return {"svids": out}


def main():
    socket, command, *args = sys.argv[1:]
    pb2, pb2_grpc = compiled()
    channel = grpc.insecure_channel(f"unix:{socket}")
    stub = pb2_grpc.SpiffeWorkloadAPIStub(channel)
    timeout = float(os.environ.get("CLIENT_TIMEOUT", "10"))
    try:
        if command == "x509":
            resp = next(iter(stub.FetchX509SVID(pb2.X509SVIDRequest(), metadata=HEADER, timeout=timeout)))
            print(json.dumps(describe_x509(resp)), flush=True)
        elif command == "x509-stream":
            for resp in stub.FetchX509SVID(pb2.X509SVIDRequest(), metadata=HEADER, timeout=timeout):
                print(json.dumps(describe_x509(resp)), flush=True)
        elif command == "bundles":
            resp = next(iter(stub.FetchX509Bundles(pb2.X509BundlesRequest(), metadata=HEADER, timeout=timeout)))
            print(json.dumps({"bundles": {td: len(split_der(b)) for td, b in resp.bundles.items()}}), flush=True)
        elif command == "jwt":
            audience = args[0]
            svid = stub.FetchJWTSVID(pb2.JWTSVIDRequest(audience=[audience]), metadata=HEADER, timeout=timeout).svids[0]
            valid = stub.ValidateJWTSVID(pb2.ValidateJWTSVIDRequest(audience=audience, svid=svid.svid), metadata=HEADER, timeout=timeout)
            bundles = next(iter(stub.FetchJWTBundles(pb2.JWTBundlesRequest(), metadata=HEADER, timeout=timeout))).bundles
            jwks = jwt.PyJWKSet.from_json(bundles[next(iter(bundles))].decode())
            kid = jwt.get_unverified_header(svid.svid)["kid"]
            key = next(k for k in jwks.keys if k.key_id == kid)
            claims = jwt.decode(svid.svid, key.key, algorithms=["ES256"], audience=audience)
            print(json.dumps({"spiffe_id": svid.spiffe_id, "validated": valid.spiffe_id, "claims_sub": valid.claims["sub"], "pyjwt_sub": claims["sub"], "trust_domains": list(bundles.keys())}), flush=True)
            try:
                stub.ValidateJWTSVID(pb2.ValidateJWTSVIDRequest(audience="https://someone-else.test", svid=svid.svid), metadata=HEADER, timeout=timeout)
                print(json.dumps({"other_audience": "accepted"}), flush=True)
            except grpc.RpcError as e:
                print(json.dumps({"other_audience": e.code().name}), flush=True)
        elif command == "no-header":
            next(iter(stub.FetchX509SVID(pb2.X509SVIDRequest(), timeout=timeout)))
            print(json.dumps({"unexpected": "answered"}), flush=True)
        else:
            raise SystemExit(f"unknown command {command}")
    except grpc.RpcError as e:
        print(json.dumps({"error": e.code().name, "details": e.details()}), flush=True)


if __name__ == "__main__":
    main()
