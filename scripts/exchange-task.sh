#!/usr/bin/env bash
# The README's "Exchange a task token", runnable against `writ dev`: register the MCP server
# and its tools, attest a connector with a join token, get ID tokens for alice and bob from
# writ dev's OpenID Provider (`writ dev id-token`), and exchange each for a task token. The
# sample policy grants alice (eng) search but not create_issue, and bob (eng, maintainers)
# create_issue but not delete_repo; the script fails unless exactly that is granted. With
# WRIT_DEV_SAAS (writ dev's SaaS), alice's task then gets the SaaS's access token from the token
# vault: refused with the link first, linked with `writ dev link-account`, then released.
# Needs: WRIT_SERVER, WRIT_CA, WRIT_ADMIN_TOKEN (as writ dev prints them; WRIT_DEV_OP if not the
# default); curl, openssl, jq. WRIT_CLI runs the writ CLI (default: this checkout's dist/cli/main.js).
set -euo pipefail
: "${WRIT_SERVER:?https URL of the broker}" "${WRIT_CA:?its CA certificate file}" "${WRIT_ADMIN_TOKEN:?the admin token}"
repo=$(cd "$(dirname "$0")/.." && pwd)
WRIT_CLI=${WRIT_CLI:-node $repo/dist/cli/main.js}
WRIT_CA=$(cd "$(dirname "$WRIT_CA")" && pwd)/$(basename "$WRIT_CA")
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT; cd "$work"
RESOURCE=https://mcp.example.com/github
CONNECTOR=spiffe://writ.local/agent/assistant-$(openssl rand -hex 4)
admin() { curl -sS --fail-with-body --cacert "$WRIT_CA" -H "Authorization: Bearer $WRIT_ADMIN_TOKEN" -H 'Content-Type: application/json' "$@"; }

# 1. An admin registers the MCP server and its tools (writ dev has loaded its sample Cedar policy).
if [ "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$WRIT_CA" -H "Authorization: Bearer $WRIT_ADMIN_TOKEN" \
        "$WRIT_SERVER/v1/admin/resources/$(jq -rn --arg u "$RESOURCE" '$u|@uri')")" != 200 ]; then
  admin -d '{"uri":"https://mcp.example.com/github","spiffe_id":"spiffe://writ.local/mcp/github",
             "tools":[{"name":"search","actions":["read"],"classification":"internal"},
                      {"name":"create_issue","actions":["write"],"classification":"internal"},
                      {"name":"delete_repo","actions":["delete"],"classification":"restricted"}]}' \
    "$WRIT_SERVER/v1/admin/resources" | jq -c '{uri, tools: [.tools[].name]}'
fi

# 2. ...and a connector (the agent): an entry and a single-use join token.
admin -d "{\"spiffe_id\":\"$CONNECTOR\",\"metadata\":{\"owner\":\"platform\"}}" "$WRIT_SERVER/v1/admin/entries" | jq -c '{id, spiffe_id}'
JOIN=$(admin -d "{\"spiffe_id\":\"$CONNECTOR\",\"ttl\":600}" "$WRIT_SERVER/v1/admin/join-tokens" | jq -r .token)

# 3. The connector makes its key and CSR and attests: its X.509-SVID and the trust bundle.
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout svid.key -out svid.csr -subj /CN=agent 2>/dev/null
jq -n --arg token "$JOIN" --rawfile csr svid.csr '{attestor:"join_token", evidence:{token:$token}, csr:$csr}' |
  curl -sS --fail-with-body --cacert "$WRIT_CA" -H 'Content-Type: application/json' -d @- "$WRIT_SERVER/v1/attest" > attest.json
jq -r .svid attest.json > svid.pem
jq -r .bundle attest.json > bundle.pem

# 4. For each user: an ID token from writ dev's OpenID Provider (authorization code + PKCE), then the exchange.
exchange() { # user, then the tools it must be granted
  local user=$1 want=$2 id_token
  id_token=$($WRIT_CLI dev id-token "$user")
  curl -sS --fail-with-body --cacert bundle.pem --cert svid.pem --key svid.key "$WRIT_SERVER/oauth2/token" \
    --data-urlencode grant_type=urn:ietf:params:oauth:grant-type:token-exchange \
    --data-urlencode subject_token="$id_token" \
    --data-urlencode subject_token_type=urn:ietf:params:oauth:token-type:id_token \
    --data-urlencode resource=$RESOURCE \
    --data-urlencode 'authorization_details=[{"type":"mcp_tool","tools":["search"],"actions":["read"]},
                                             {"type":"mcp_tool","tools":["create_issue"],"actions":["write"]},
                                             {"type":"mcp_tool","tools":["delete_repo"],"actions":["delete"]}]' > "$user.json"
  jq -e --arg user "$user" --argjson want "$want" '[.authorization_details[].tools[]] | sort == ($want | sort)' "$user.json" >/dev/null ||
    { echo "FAIL: $user was granted $(jq -c '[.authorization_details[].tools[]]' "$user.json"), expected $want" >&2; exit 1; }
  echo "$user: granted $(jq -c '[.authorization_details[].tools[]]' "$user.json"), sub $(jq -r .access_token "$user.json" | cut -d. -f2 | tr '_-' '/+' | base64 -d 2>/dev/null | jq -r .sub || true)"
}
exchange alice '["search"]'          # eng: read; create_issue (write) and delete_repo refused
exchange bob '["search","create_issue"]'  # maintainers: write too; delete_repo refused (no one may delete)

# 5. The same with the CLI: `writ exchange` over mTLS with the SVID directory, naming what was refused.
mkdir -p cli && cp svid.pem bundle.pem cli/ && cp svid.key cli/key.pem
$WRIT_CLI dev id-token carol > carol.jwt
if $WRIT_CLI exchange --dir cli --subject-token carol.jwt --resource $RESOURCE --tool search:read -o json > carol.json 2> carol.err; then
  echo "FAIL: carol (no groups) was granted $(jq -c .authorization_details carol.json)" >&2; exit 1
fi
$WRIT_CLI dev id-token alice > alice.jwt
$WRIT_CLI exchange --dir cli --subject-token alice.jwt --resource $RESOURCE --tool search:read --tool create_issue:write -o json > alice-cli.json
jq -e '.refused == ["create_issue:write"] and ([.authorization_details[].tools[]] == ["search"])' alice-cli.json >/dev/null ||
  { echo "FAIL: writ exchange for alice answered $(jq -c '{refused, authorization_details}' alice-cli.json)" >&2; exit 1; }
echo "writ exchange (alice): granted search:read, refused $(jq -c .refused alice-cli.json); carol: $(cat carol.err)"

# 6. The token vault (with writ dev's SaaS): alice's task asks for the SaaS's access token (RFC 8693,
#    audience = the provider). The first time Writ answers interaction_required with the link where
#    alice links her account; `writ dev link-account` is her browser. The connector holds no SaaS secret.
if [ -n "${WRIT_DEV_SAAS:-}" ]; then
  release() {
    curl -sS -o release.json -w '%{http_code}' --cacert bundle.pem --cert svid.pem --key svid.key "$WRIT_SERVER/oauth2/token" \
      --data-urlencode grant_type=urn:ietf:params:oauth:grant-type:token-exchange \
      --data-urlencode subject_token="$(jq -r .access_token alice.json)" \
      --data-urlencode subject_token_type=urn:ietf:params:oauth:token-type:access_token \
      --data-urlencode audience=notes --data-urlencode scope=notes:write
  }
  status=$(release)
  if [ "$status" = 400 ] && [ "$(jq -r .error release.json)" = interaction_required ]; then
    echo "vault: alice has no grant yet; link $(jq -r .link_uri release.json | sed -E 's/[A-Za-z0-9_-]{43}$/…/')"
    $WRIT_CLI dev link-account "$(jq -r .link_uri release.json)" alice
    status=$(release)
  fi
  [ "$status" = 200 ] || { echo "FAIL: the vault answered $status: $(cat release.json)" >&2; exit 1; }
  jq -e 'has("refresh_token") | not' release.json >/dev/null || { echo "FAIL: the vault released a refresh token" >&2; exit 1; }
  curl -sS --fail-with-body -H "Authorization: Bearer $(jq -r .access_token release.json)" -H 'Content-Type: application/json' \
    -d '{"text":"posted by the agent for alice"}' "$WRIT_DEV_SAAS/api/notes" > note.json
  jq -e '.author == "alice"' note.json >/dev/null || { echo "FAIL: the SaaS recorded $(cat note.json)" >&2; exit 1; }
  echo "vault: released $(jq -r .scope release.json) for $(jq -r .expires_in release.json) s; the SaaS recorded a note by $(jq -r .author note.json) via $(jq -r .clientId note.json)"
fi
