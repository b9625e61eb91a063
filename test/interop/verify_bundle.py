"""Independent check of a Writ trust bundle and server SVID with python-cryptography.

usage: verify_bundle.py BUNDLE_JSON LEAF_PEM TRUST_DOMAIN
Prints "ok" or exits non-zero with the reason.
"""
import base64, json, sys
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

bundle_path, leaf_path, trust_domain = sys.argv[1:4]
bundle = json.load(open(bundle_path))
assert isinstance(bundle["spiffe_sequence"], int) and bundle["spiffe_sequence"] >= 1, "spiffe_sequence"
assert isinstance(bundle["spiffe_refresh_hint"], int), "spiffe_refresh_hint"

def b64url_int(s):
    return int.from_bytes(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)), "big")

anchors = []
for key in bundle["keys"]:
    if key["use"] == "x509-svid":
        assert "kid" not in key, "x509-svid authority must not have a kid"
        assert len(key["x5c"]) == 1, "x5c must hold exactly one certificate"
        cert = x509.load_der_x509_certificate(base64.b64decode(key["x5c"][0]))
        nums = cert.public_key().public_numbers()
        assert (nums.x, nums.y) == (b64url_int(key["x"]), b64url_int(key["y"])), "JWK parameters differ from the certificate key"
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
        assert bc.critical and bc.value.ca, "authority is not a CA"
        anchors.append(cert)
    elif key["use"] == "jwt-svid":
        assert key["kid"], "jwt-svid authority needs a kid"
        ec.EllipticCurvePublicNumbers(b64url_int(key["x"]), b64url_int(key["y"]), ec.SECP256R1()).public_key()
    else:
        raise AssertionError("unknown use " + key["use"])
assert anchors, "no X.509 authority"

leaf = x509.load_pem_x509_certificate(open(leaf_path, "rb").read())
issuer = next(a for a in anchors if a.subject == leaf.issuer)
# The leaf's signature, checked with the authority's key (works on python-cryptography 38+).
issuer.public_key().verify(leaf.signature, leaf.tbs_certificate_bytes, ec.ECDSA(leaf.signature_hash_algorithm))
uris = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.UniformResourceIdentifier)
assert uris == [f"spiffe://{trust_domain}/writ/server"], uris
assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca, "leaf is a CA"
ku = leaf.extensions.get_extension_for_class(x509.KeyUsage)
assert ku.critical and ku.value.digital_signature and not ku.value.key_cert_sign and not ku.value.crl_sign, "leaf key usage"
print("ok")
