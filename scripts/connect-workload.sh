#!/usr/bin/env bash
# The README's "connect a workload" walkthrough, runnable: create an entry and a join
# token, make a key and CSR, attest, verify, renew over mTLS, get a JWT-SVID.
# Needs: WRIT (https://host:port), CA (the CA certificate file), WRIT_ADMIN_TOKEN; curl, openssl, jq.
set -euo pipefail
: "${WRIT:?https URL of the broker}" "${CA:?path of certs/ca.crt}" "${WRIT_ADMIN_TOKEN:?the bootstrap admin token}"
TD=${TD:-writ.local}
work=$(mktemp -d); cd "$work"

# 1. An admin registers the connector: who it is and what it fronts.
curl -sS --fail-with-body --cacert "$CA" -H "Authorization: Bearer $WRIT_ADMIN_TOKEN" -H 'Content-Type: application/json' \
  -d "{\"spiffe_id\":\"spiffe://$TD/connector/github\",\"metadata\":{\"owner\":\"platform\",\"mcp_server_uri\":\"https://mcp.example.com/github\",\"tools\":[\"issues.read\"]}}" \
  "$WRIT/v1/admin/entries" | jq -c '{id, spiffe_id}'

# 2. ...and hands it a single-use join token.
JOIN=$(curl -sS --fail-with-body --cacert "$CA" -H "Authorization: Bearer $WRIT_ADMIN_TOKEN" -H 'Content-Type: application/json' \
  -d "{\"spiffe_id\":\"spiffe://$TD/connector/github\",\"ttl\":600}" "$WRIT/v1/admin/join-tokens" | jq -r .token)

# 3. The connector makes its own key and a CSR (the key never leaves it).
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout svid.key -out svid.csr -subj /CN=github 2>/dev/null

# 4. It attests with the token and gets its X.509-SVID and the trust bundle.
jq -n --arg token "$JOIN" --rawfile csr svid.csr '{attestor:"join_token", evidence:{token:$token}, csr:$csr}' |
  curl -sS --fail-with-body --cacert "$CA" -H 'Content-Type: application/json' -d @- "$WRIT/v1/attest" > attest.json
jq -r .svid attest.json > svid.pem
jq -r .bundle attest.json > bundle.pem
openssl x509 -in svid.pem -noout -ext subjectAltName
openssl verify -CAfile bundle.pem svid.pem

# 5. Before it expires, it renews over mTLS with a new key, and switches to the new pair
#    (the previous SVID is not revoked: it stays valid until its own expiry).
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout next.key -out next.csr -subj /CN=github 2>/dev/null
jq -n --rawfile csr next.csr '{csr:$csr}' |
  curl -sS --fail-with-body --cacert bundle.pem --cert svid.pem --key svid.key -H 'Content-Type: application/json' -d @- "$WRIT/v1/svid/renew" > renew.json
jq -r .svid renew.json > svid.pem && mv next.key svid.key
jq -r .expires_at renew.json
openssl verify -CAfile bundle.pem svid.pem

# 6. And asks for a JWT-SVID for an audience.
curl -sS --fail-with-body --cacert bundle.pem --cert svid.pem --key svid.key -H 'Content-Type: application/json' \
  -d '{"audience":["https://mcp.example.com/github"]}' "$WRIT/v1/jwt-svid" | jq -r .token | cut -d. -f2 | tr '_-' '/+' | base64 -d 2>/dev/null | jq -c '{sub, aud}' || true
rm -rf "$work"
