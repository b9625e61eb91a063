import { execFileSync } from 'node:child_process';
import {
  bitString,
  boolean,
  contextTag,
  generalizedTime,
  ia5String,
  ipAddressOctets,
  nullValue,
  octetString,
  oid,
  readChildren,
  readElement,
  readOid,
  readString,
  sequence,
  smallInteger,
  time,
  tlv,
  unsignedInteger,
  utcTime,
} from './der';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** The openssl CLI's reading of DER (a parser Writ did not write). */
const asn1parse = (der: Uint8Array) => execFileSync('openssl', ['asn1parse', '-inform', 'DER', '-i'], { input: der, encoding: 'utf8' });

describe('DER writer (X.690)', () => {
  it('encodes definite lengths in the shortest form (§10.1)', () => {
    expect(hex(tlv(0x04, new Uint8Array(0)))).toBe('0400');
    expect(hex(tlv(0x04, new Uint8Array(127))).slice(0, 4)).toBe('047f');
    expect(hex(tlv(0x04, new Uint8Array(128))).slice(0, 6)).toBe('048180');
    expect(hex(tlv(0x04, new Uint8Array(255))).slice(0, 6)).toBe('0481ff');
    expect(hex(tlv(0x04, new Uint8Array(256))).slice(0, 8)).toBe('04820100');
    expect(hex(tlv(0x04, new Uint8Array(65536))).slice(0, 10)).toBe('0483010000');
    expect(tlv(0x30, Uint8Array.of(1), Uint8Array.of(2, 3))).toEqual(Buffer.from('3003010203', 'hex'));
  });

  it('encodes non-negative INTEGERs minimally (§8.3.2)', () => {
    expect(hex(unsignedInteger(Uint8Array.of()))).toBe('020100');
    expect(hex(unsignedInteger(Uint8Array.of(0, 0, 0)))).toBe('020100');
    expect(hex(unsignedInteger(Uint8Array.of(0x7f)))).toBe('02017f');
    expect(hex(unsignedInteger(Uint8Array.of(0x80)))).toBe('02020080');
    expect(hex(unsignedInteger(Uint8Array.of(0, 0, 0x80, 1)))).toBe('0203008001');
    expect(hex(unsignedInteger(Uint8Array.of(0, 0x01, 0xff)))).toBe('020201ff');
    expect(hex(smallInteger(0))).toBe('020100');
    expect(hex(smallInteger(2))).toBe('020102');
    expect(hex(smallInteger(256))).toBe('02020100');
    expect(() => smallInteger(-1)).toThrow(RangeError);
  });

  it('encodes OBJECT IDENTIFIERs (§8.19)', () => {
    expect(hex(oid('1.2.840.10045.4.3.2'))).toBe('06082a8648ce3d040302');
    expect(hex(oid('2.5.29.17'))).toBe('0603551d11');
    expect(hex(oid('1.3.6.1.5.5.7.3.1'))).toBe('06082b06010505070301');
    expect(hex(oid('1.2.840.113549.1.1.11'))).toBe('06092a864886f70d01010b');
    expect(hex(oid('2.999.3'))).toBe('0603883703'); // X.690 §8.19.5's example: first subidentifier 1079
    expect(() => oid('1')).toThrow(RangeError);
    expect(() => oid('1.40')).toThrow(RangeError);
    expect(() => oid('1.02')).toThrow(RangeError);
  });

  it('encodes BIT STRING, OCTET STRING, BOOLEAN (DER TRUE is 0xff), NULL, IA5String and context tags', () => {
    expect(hex(bitString(Uint8Array.of(0xab)))).toBe('030200ab');
    expect(hex(octetString(Uint8Array.of(1, 2)))).toBe('04020102');
    expect(hex(boolean(true))).toBe('0101ff');
    expect(hex(boolean(false))).toBe('010100');
    expect(hex(nullValue())).toBe('0500');
    expect(hex(ia5String('a.b'))).toBe('1603612e62');
    expect(() => ia5String('é')).toThrow(RangeError);
    expect(hex(contextTag(0, true, smallInteger(2)))).toBe('a003020102');
    expect(hex(contextTag(6, false, Buffer.from('x')))).toBe('860178');
    expect(hex(contextTag(3, true, sequence()))).toBe('a3023000');
  });

  it('encodes Time per RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050, whole seconds', () => {
    expect(utcTime(new Date('2026-11-27T12:00:05.999Z')).subarray(2).toString()).toBe('261127120005Z');
    expect(utcTime(new Date('1950-01-01T00:00:00Z')).subarray(2).toString()).toBe('500101000000Z');
    expect(generalizedTime(new Date('2050-01-01T00:00:00Z')).subarray(2).toString()).toBe('20500101000000Z');
    expect(time(new Date('2049-12-31T23:59:59Z'))[0]).toBe(0x17);
    expect(time(new Date('2050-01-01T00:00:00Z'))[0]).toBe(0x18);
    expect(time(new Date('1949-12-31T23:59:59Z'))[0]).toBe(0x18);
    expect(() => utcTime(new Date('2050-01-01T00:00:00Z'))).toThrow(RangeError);
  });

  it('encodes IP addresses as 4 or 16 octets (RFC 5280 §4.2.1.6)', () => {
    expect(hex(ipAddressOctets('127.0.0.1'))).toBe('7f000001');
    expect(hex(ipAddressOctets('::1'))).toBe('00000000000000000000000000000001');
    expect(hex(ipAddressOctets('::'))).toBe('00'.repeat(16));
    expect(hex(ipAddressOctets('2001:db8::8a2e:370:7334'))).toBe('20010db80000000000008a2e03707334');
    expect(hex(ipAddressOctets('2001:DB8:0:0:1:0:0:1'))).toBe('20010db8000000000001000000000001');
    expect(hex(ipAddressOctets('fe80::'))).toBe('fe80' + '00'.repeat(14));
    expect(hex(ipAddressOctets('::ffff:192.0.2.1'))).toBe('00000000000000000000ffffc0000201');
    expect(hex(ipAddressOctets('1:2:3:4:5:6:1.2.3.4'))).toBe('00010002000300040005000601020304');
    expect(hex(ipAddressOctets('fe80::1%eth0'))).toBe('fe80' + '00'.repeat(13) + '01');
    expect(() => ipAddressOctets('300.1.1.1')).toThrow(RangeError);
    expect(() => ipAddressOctets('localhost')).toThrow(RangeError);
  });

  it('writes structures openssl reads back', () => {
    const der = sequence(contextTag(0, true, smallInteger(2)), unsignedInteger(Buffer.from('01ff', 'hex')), sequence(oid('1.2.840.10045.4.3.2')), time(new Date('2051-03-04T05:06:07Z')), octetString(sequence(boolean(true))));
    const text = asn1parse(der);
    expect(text).toContain('INTEGER           :02');
    expect(text).toContain('INTEGER           :01FF');
    expect(text).toContain('ecdsa-with-SHA256');
    expect(text).toContain('GENERALIZEDTIME   :20510304050607Z');
  });
});

describe('DER reader', () => {
  it('reads elements and children', () => {
    const der = sequence(smallInteger(5), octetString(new Uint8Array(200)));
    const outer = readElement(der);
    expect([outer.tag, outer.contentStart, outer.end]).toEqual([0x30, 3, der.length]); // 206 content octets: 0x81 0xce
    const [a, b] = readChildren(der, outer);
    expect([a!.tag, a!.start, a!.end]).toEqual([0x02, 3, 6]);
    expect([b!.tag, b!.contentStart, b!.end]).toEqual([0x04, 9, der.length]);
  });

  it.each([
    ['a truncated element', '3005020100'],
    ['an indefinite length', '3080020100 0000'],
    ['a non-minimal long length', '30810302 0100'],
    ['a length with a leading zero octet', '3082000302 0100'],
    ['a multi-octet tag', '1f8101 00'],
    ['a lone octet', '30'],
  ])('refuses %s', (_, h) => {
    expect(() => readElement(Buffer.from(h.replace(/ /g, ''), 'hex'))).toThrow(RangeError);
  });

  it('reads OBJECT IDENTIFIERs back as the writer wrote them (§8.19)', () => {
    for (const dotted of ['1.2.840.10045.4.3.2', '2.5.29.17', '0.9.2342.19200300.100.1.25', '2.999.3', '1.2.840.113549.1.9.1', '2.25.329800735698586629295641978511506172918']) {
      const der = oid(dotted);
      expect(readOid(der, readElement(der))).toBe(dotted);
    }
    const readHex = (h: string) => {
      const der = Buffer.from(h, 'hex');
      return readOid(der, readElement(der));
    };
    expect(() => readHex('06022a86')).toThrow(RangeError); // the last subidentifier is unterminated
    expect(() => readHex('0600')).toThrow(RangeError);
    expect(() => readHex('0603808001')).toThrow(RangeError); // a subidentifier with a leading 0x80
    expect(() => readHex(hex(ia5String('x')))).toThrow(RangeError); // not an OID
  });

  it('reads character strings by their X.680 type, and nothing that does not decode', () => {
    const read = (tag: number, content: Uint8Array) => {
      const der = tlv(tag, content);
      return readString(der, readElement(der));
    };
    expect(read(0x0c, Buffer.from('café ✓', 'utf8'))).toBe('café ✓');
    expect(read(0x0c, Uint8Array.of(0xc3))).toBeUndefined(); // truncated UTF-8
    expect(read(0x13, Buffer.from('Example, Inc.'))).toBe('Example, Inc.');
    expect(read(0x16, Uint8Array.of(0x61, 0xe9))).toBeUndefined(); // IA5 holds ASCII only
    expect(read(0x12, Buffer.from('123'))).toBe('123');
    expect(read(0x1a, Buffer.from('vis'))).toBe('vis');
    expect(read(0x14, Uint8Array.of(0x63, 0xe9))).toBe('cé'); // Teletex read as Latin-1
    expect(read(0x1e, Uint8Array.of(0x00, 0x41, 0x00, 0xe9))).toBe('Aé'); // BMPString, UTF-16BE
    expect(read(0x1e, Uint8Array.of(0x00))).toBeUndefined();
    expect(read(0x1c, Uint8Array.of(0, 1, 0xf6, 0x00))).toBe('\u{1f600}'); // UniversalString, UTF-32BE
    expect(read(0x04, Buffer.from('x'))).toBeUndefined(); // an OCTET STRING is not a character string
  });

  it('keeps children within their parent', () => {
    // A SEQUENCE of 2 octets whose child claims 3.
    expect(() => readChildren(Buffer.from('3002040300000000', 'hex'), readElement(Buffer.from('3002040300000000', 'hex')))).toThrow(RangeError);
  });
});
