import { encodingOf, readChildren, readElement, readOid, readString, TAG } from '../ca/der';

/**
 * X.501 Names as x509pop reads them: exactly as encoded in the certificate (RFC 5280
 * §4.1.2.4), over the DER reader of `src/ca/der.ts`, and written as RFC 4514 strings.
 *
 * @example
 * rfc4514(subjectDer)                        // 'CN=connector-a,OU=Connectors,O=Example\\, Inc.,C=US'
 * nameAttributes(subjectDer, '2.5.4.3')      // ['connector-a']
 */

/** RFC 4514 §3: the attribute types that have short names; any other is written as its OID. */
const SHORT_NAMES: ReadonlyMap<string, string> = new Map([
  ['2.5.4.3', 'CN'],
  ['2.5.4.7', 'L'],
  ['2.5.4.8', 'ST'],
  ['2.5.4.10', 'O'],
  ['2.5.4.11', 'OU'],
  ['2.5.4.6', 'C'],
  ['2.5.4.9', 'STREET'],
  ['0.9.2342.19200300.100.1.25', 'DC'],
  ['0.9.2342.19200300.100.1.1', 'UID'],
]);

interface Attribute {
  readonly oid: string;
  /** The AttributeValue's whole DER encoding. */
  readonly encoded: Uint8Array;
  /** The value as text, when it is a string type that decodes cleanly. */
  readonly text: string | undefined;
}

/** Name ::= SEQUENCE OF RelativeDistinguishedName (SET OF AttributeTypeAndValue), in encoded order. Throws RangeError. */
function nameRdns(nameDer: Uint8Array): Attribute[][] {
  const name = readElement(nameDer);
  if (name.tag !== TAG.SEQUENCE) throw new RangeError('a Name is a SEQUENCE');
  return readChildren(nameDer, name).map((rdn) => {
    if (rdn.tag !== TAG.SET) throw new RangeError('a RelativeDistinguishedName is a SET');
    return readChildren(nameDer, rdn).map((atv) => {
      const [type, value] = atv.tag === TAG.SEQUENCE ? readChildren(nameDer, atv) : [];
      if (!type || !value || type.tag !== TAG.OID) throw new RangeError('bad AttributeTypeAndValue');
      return { oid: readOid(nameDer, type), encoded: encodingOf(nameDer, value), text: readString(nameDer, value) };
    });
  });
}

/** The text values of every attribute of type `oid` in the Name, in encoded order. */
export function nameAttributes(nameDer: Uint8Array, oid: string): string[] {
  return nameRdns(nameDer)
    .flat()
    .filter((a) => a.oid === oid && a.text !== undefined)
    .map((a) => a.text!);
}

/**
 * RFC 4514 §2: RDNs from last to first, separated by ","; multi-valued RDNs joined by "+";
 * known types by short name with escaped string values; others as the dotted OID and
 * "#" with the hex of the value's DER (§2.4). Control characters are escaped as \XX.
 */
export function rfc4514(nameDer: Uint8Array): string {
  return nameRdns(nameDer)
    .reverse()
    .map((rdn) =>
      rdn
        .map((a) => {
          const short = SHORT_NAMES.get(a.oid);
          if (short && a.text !== undefined) return `${short}=${escapeValue(a.text)}`;
          return `${short ?? a.oid}=#${Buffer.from(a.encoded).toString('hex')}`;
        })
        .join('+'),
    )
    .join(',');
}

/** RFC 4514 §2.4: the characters a string value escapes. */
function escapeValue(value: string): string {
  const chars = Array.from(value);
  return chars
    .map((ch, i) => {
      const cp = ch.codePointAt(0)!;
      if ('"+,;<>\\'.includes(ch)) return `\\${ch}`;
      if ((i === 0 && (ch === ' ' || ch === '#')) || (i === chars.length - 1 && ch === ' ')) return `\\${ch}`;
      if (cp < 0x20 || cp === 0x7f) return `\\${cp.toString(16).toUpperCase().padStart(2, '0')}`;
      return ch;
    })
    .join('');
}

/** Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue } (RFC 5280 §4.1): the raw Names and the signature algorithm. */
export function certificateNames(der: Uint8Array): { subjectDer: Buffer; issuerDer: Buffer; signatureOid: string } {
  const cert = readElement(der);
  const [tbs, sigAlg] = cert.tag === TAG.SEQUENCE ? readChildren(der, cert) : [];
  if (!tbs || !sigAlg || tbs.tag !== TAG.SEQUENCE || sigAlg.tag !== TAG.SEQUENCE) throw new RangeError('not a certificate');
  const fields = readChildren(der, tbs);
  const skip = fields[0]?.tag === 0xa0 ? 1 : 0; // [0] EXPLICIT version
  // serialNumber, signature, issuer, validity, subject
  const issuer = fields[skip + 2];
  const subject = fields[skip + 4];
  const algOid = readChildren(der, sigAlg)[0];
  if (!issuer || !subject || !algOid) throw new RangeError('not a certificate');
  const bytes = Buffer.from(der.buffer, der.byteOffset, der.byteLength);
  return {
    issuerDer: bytes.subarray(issuer.start, issuer.end),
    subjectDer: bytes.subarray(subject.start, subject.end),
    signatureOid: readOid(der, algOid),
  };
}
