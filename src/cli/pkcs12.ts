import { createHash, type KeyObject } from 'node:crypto';
import forge from 'node-forge';
import { sha256 } from '../core/hash';

/**
 * A password-protected PKCS#12 (RFC 7292) holding an X.509-SVID's key, its chain and the
 * trust bundle, for runtimes that want one file (Java keystores, .NET, browsers).
 *
 * Modern algorithms only, so OpenSSL 3 reads it without `-legacy`: the key is a
 * PKCS#8 shrouded key bag under PBES2 (PBKDF2 with HMAC-SHA-256, AES-256-CBC), and the
 * whole is authenticated by an HMAC-SHA-256 MAC (RFC 7292 appendix B key derivation).
 * Certificates are public and sit in a plain SafeContents, covered by the MAC.
 *
 * forge's `pkcs12.toPkcs12Asn1` only takes RSA keys and certificates forge can parse (RSA);
 * an SVID's key is EC P-256. So the same structure is put together here from forge's
 * ASN.1, PBES2 and PKCS#12 key-derivation primitives, with the DER node:crypto gives.
 *
 * ```ts
 * writeFileSync('svid.p12', toPkcs12({ key, chain: [leafDer, ...intermediates], bundle: rootsDer, password, friendlyName: spiffeId }), { mode: 0o600 });
 * ```
 */
export interface Pkcs12Input {
  readonly key: KeyObject;
  /** The SVID chain, leaf first, DER. */
  readonly chain: readonly Buffer[];
  /** Trust bundle certificates, DER. */
  readonly bundle: readonly Buffer[];
  readonly password: string;
  /** The leaf's and key's friendlyName (the SPIFFE ID). */
  readonly friendlyName?: string;
}

/** PBKDF2 iterations for the key and the MAC: OpenSSL 3's own default (PKCS12_DEFAULT_ITER). */
const ITERATIONS = 2048;
const SALT_BYTES = 16;

const { asn1, pki } = forge;
const U = asn1.Class.UNIVERSAL;
const T = asn1.Type;
const seq = (...items: forge.asn1.Asn1[]) => asn1.create(U, T.SEQUENCE, true, items);
const oidOf = (name: string) => asn1.create(U, T.OID, false, asn1.oidToDer(pki.oids[name]!).getBytes());
const octets = (bytes: string) => asn1.create(U, T.OCTETSTRING, false, bytes);
const explicit0 = (item: forge.asn1.Asn1) => asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, true, [item]);
const binary = (buf: Buffer) => buf.toString('binary');
const der = (item: forge.asn1.Asn1) => asn1.toDer(item).getBytes();

/** PKCS#9 attributes pairing a key with its certificate. */
function bagAttributes(localKeyId: string, friendlyName?: string): forge.asn1.Asn1 {
  const attrs = [seq(oidOf('localKeyId'), asn1.create(U, T.SET, true, [octets(localKeyId)]))];
  if (friendlyName !== undefined) attrs.push(seq(oidOf('friendlyName'), asn1.create(U, T.SET, true, [asn1.create(U, T.BMPSTRING, false, friendlyName)])));
  return asn1.create(U, T.SET, true, attrs);
}

/** PKCS#7 ContentInfo of type data around a SafeContents. */
const dataContent = (safeBags: forge.asn1.Asn1[]) => seq(oidOf('data'), explicit0(octets(der(seq(...safeBags)))));

export function toPkcs12(input: Pkcs12Input): Buffer {
  if (input.chain.length === 0) throw new Error('a PKCS#12 needs the SVID certificate');
  // Pairs the key with the leaf: SHA-1 of the leaf's DER, as OpenSSL and forge do.
  const localKeyId = binary(createHash('sha1').update(input.chain[0]!).digest());
  const attributes = bagAttributes(localKeyId, input.friendlyName);

  const certBag = (certDer: Buffer, attrs?: forge.asn1.Asn1) =>
    seq(oidOf('certBag'), explicit0(seq(oidOf('x509Certificate'), explicit0(octets(binary(certDer))))), ...(attrs ? [attrs] : []));
  // The chain, then the bundle's roots; a certificate in both is kept once. The leaf comes first and carries the pairing attributes.
  const seen = new Set<string>();
  const certs = [...input.chain, ...input.bundle].filter((c) => {
    const h = sha256(c, 'hex');
    if (seen.has(h)) return false;
    seen.add(h);
    return true;
  });
  const certBags = certs.map((c, i) => certBag(c, i === 0 ? attributes : undefined));

  // PBES2 takes the password's UTF-8 octets (RFC 8018 §3); the MAC key derivation its BMPString (RFC 7292 B.1).
  const pkcs8 = asn1.fromDer(binary(input.key.export({ type: 'pkcs8', format: 'der' })));
  const encryptedKey = pki.encryptPrivateKeyInfo(pkcs8, forge.util.encodeUtf8(input.password), { algorithm: 'aes256', prfAlgorithm: 'sha256', count: ITERATIONS, saltSize: SALT_BYTES });
  const keyBag = seq(oidOf('pkcs8ShroudedKeyBag'), explicit0(encryptedKey), attributes);

  const authSafe = seq(dataContent(certBags), dataContent([keyBag]));
  const authSafeDer = der(authSafe);

  const salt = forge.random.getBytesSync(SALT_BYTES);
  const macKey = forge.pkcs12.generateKey(input.password, forge.util.createBuffer(salt), 3, ITERATIONS, 32, forge.md.sha256.create());
  const hmac = forge.hmac.create();
  hmac.start('sha256', macKey.getBytes());
  hmac.update(authSafeDer);
  const macData = seq(
    seq(seq(oidOf('sha256'), asn1.create(U, T.NULL, false, '')), octets(hmac.digest().getBytes())),
    octets(salt),
    asn1.create(U, T.INTEGER, false, asn1.integerToDer(ITERATIONS).getBytes()),
  );

  const pfx = seq(asn1.create(U, T.INTEGER, false, asn1.integerToDer(3).getBytes()), seq(oidOf('data'), explicit0(octets(authSafeDer))), macData);
  return Buffer.from(der(pfx), 'binary');
}
