import { isIPv4, isIPv6 } from 'node:net';

/**
 * A minimal DER (X.690 §10) writer and reader: just what issuing an X.509-SVID and reading
 * a certificate's names exactly as signed need, without a generic ASN.1 schema engine.
 * Writers return the complete TLV encoding; readers return views into the input.
 */

export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  NUMERIC_STRING: 0x12,
  PRINTABLE_STRING: 0x13,
  TELETEX_STRING: 0x14,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  VISIBLE_STRING: 0x1a,
  UNIVERSAL_STRING: 0x1c,
  BMP_STRING: 0x1e,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

/** The definite-length octets for a content of `n` octets (X.690 §8.1.3, DER: the shortest form). */
function lengthOctets(n: number): number[] {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`invalid DER length ${n}`);
  if (n < 0x80) return [n];
  const out: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) out.unshift(v & 0xff);
  if (out.length > 4) throw new RangeError(`DER length ${n} is too large`);
  return [0x80 | out.length, ...out];
}

/** One TLV: `tag` (a single identifier octet) around the concatenated `contents`. */
export function tlv(tag: number, ...contents: readonly Uint8Array[]): Buffer {
  let n = 0;
  for (const c of contents) n += c.length;
  const len = lengthOctets(n);
  const out = Buffer.allocUnsafe(1 + len.length + n);
  out[0] = tag;
  let at = 1;
  for (const b of len) out[at++] = b;
  for (const c of contents) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

export const sequence = (...contents: readonly Uint8Array[]): Buffer => tlv(TAG.SEQUENCE, ...contents);
export const set = (...contents: readonly Uint8Array[]): Buffer => tlv(TAG.SET, ...contents);

/**
 * A non-negative INTEGER from its big-endian magnitude: leading zero octets dropped,
 * one 0x00 added when the high bit is set, so the encoding is minimal and positive.
 */
export function unsignedInteger(magnitude: Uint8Array): Buffer {
  let start = 0;
  while (start < magnitude.length - 1 && magnitude[start] === 0) start++;
  const m = magnitude.subarray(start);
  if (m.length === 0) return tlv(TAG.INTEGER, Uint8Array.of(0));
  return (m[0]! & 0x80) !== 0 ? tlv(TAG.INTEGER, Uint8Array.of(0), m) : tlv(TAG.INTEGER, m);
}

/** A small non-negative INTEGER. */
export function smallInteger(value: number): Buffer {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`invalid INTEGER ${value}`);
  const bytes: number[] = [];
  for (let v = value; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return unsignedInteger(Uint8Array.from(bytes));
}

/** An OBJECT IDENTIFIER from dotted decimal (X.690 §8.19). */
export function oid(dotted: string): Buffer {
  const arcs = dotted.split('.').map((a) => {
    if (!/^(0|[1-9][0-9]*)$/.test(a)) throw new RangeError(`invalid OID ${dotted}`);
    return BigInt(a);
  });
  if (arcs.length < 2 || arcs[0]! > 2n || (arcs[0]! < 2n && arcs[1]! > 39n)) throw new RangeError(`invalid OID ${dotted}`);
  const subs = [arcs[0]! * 40n + arcs[1]!, ...arcs.slice(2)];
  const out: number[] = [];
  for (const sub of subs) {
    const base128: number[] = [Number(sub & 0x7fn)];
    for (let v = sub >> 7n; v > 0n; v >>= 7n) base128.unshift(Number(v & 0x7fn) | 0x80);
    out.push(...base128);
  }
  return tlv(TAG.OID, Uint8Array.from(out));
}

/** A BIT STRING of whole octets (X.690 §8.6: the first content octet counts unused bits, here 0). */
export const bitString = (bytes: Uint8Array): Buffer => tlv(TAG.BIT_STRING, Uint8Array.of(0), bytes);
export const octetString = (bytes: Uint8Array): Buffer => tlv(TAG.OCTET_STRING, bytes);
/** DER BOOLEAN: TRUE is 0xff (X.690 §11.1). */
export const boolean = (value: boolean): Buffer => tlv(TAG.BOOLEAN, Uint8Array.of(value ? 0xff : 0x00));
export const nullValue = (): Buffer => tlv(TAG.NULL);

/** The content octets of an IA5String: ASCII only; anything else cannot be encoded and throws. */
export function ia5Octets(text: string): Buffer {
  if (!/^[\x00-\x7f]*$/.test(text)) throw new RangeError('an IA5String holds ASCII characters only');
  return Buffer.from(text, 'latin1');
}

/** An IA5String. */
export const ia5String = (text: string): Buffer => tlv(TAG.IA5_STRING, ia5Octets(text));

const two = (n: number) => (n < 10 ? `0${n}` : String(n));

/** UTCTime YYMMDDHHMMSSZ (X.690 §11.8; RFC 5280 §4.1.2.5.1: seconds present, Zulu, years 1950–2049). */
export function utcTime(date: Date): Buffer {
  const y = date.getUTCFullYear();
  if (y < 1950 || y > 2049) throw new RangeError(`UTCTime holds the years 1950 to 2049, not ${y}`);
  const text = `${two(y % 100)}${two(date.getUTCMonth() + 1)}${two(date.getUTCDate())}${two(date.getUTCHours())}${two(date.getUTCMinutes())}${two(date.getUTCSeconds())}Z`;
  return tlv(TAG.UTC_TIME, Buffer.from(text, 'latin1'));
}

/** GeneralizedTime YYYYMMDDHHMMSSZ, no fractional seconds (RFC 5280 §4.1.2.5.2). */
export function generalizedTime(date: Date): Buffer {
  const y = date.getUTCFullYear();
  if (y < 0 || y > 9999) throw new RangeError(`GeneralizedTime holds the years 0 to 9999, not ${y}`);
  const text = `${String(y).padStart(4, '0')}${two(date.getUTCMonth() + 1)}${two(date.getUTCDate())}${two(date.getUTCHours())}${two(date.getUTCMinutes())}${two(date.getUTCSeconds())}Z`;
  return tlv(TAG.GENERALIZED_TIME, Buffer.from(text, 'latin1'));
}

/** RFC 5280 §4.1.2.5 Time: UTCTime for 1950 through 2049, GeneralizedTime otherwise. Milliseconds are dropped. */
export function time(date: Date): Buffer {
  const y = date.getUTCFullYear();
  return y >= 1950 && y <= 2049 ? utcTime(date) : generalizedTime(date);
}

/** A context-specific tag [n]: constructed (EXPLICIT, or IMPLICIT over a constructed type) or primitive (IMPLICIT). */
export function contextTag(n: number, constructed: boolean, ...contents: readonly Uint8Array[]): Buffer {
  if (!Number.isInteger(n) || n < 0 || n > 30) throw new RangeError(`context tag [${n}] needs a single identifier octet`);
  return tlv(0x80 | (constructed ? 0x20 : 0) | n, ...contents);
}

/** The octets of an IPv4 (4) or IPv6 (16) address, as a GeneralName iPAddress holds them (RFC 5280 §4.2.1.6). */
export function ipAddressOctets(ip: string): Buffer {
  if (isIPv4(ip)) return Buffer.from(ip.split('.').map(Number));
  const at = ip.indexOf('%'); // an IPv6 zone ID names a local interface; it is not part of the address
  const address = at >= 0 ? ip.slice(0, at) : ip;
  if (!isIPv6(address)) throw new RangeError(`"${ip}" is not an IP address`);
  const out = Buffer.alloc(16);
  let tail = address;
  let v4: Buffer | undefined;
  const lastColon = tail.lastIndexOf(':');
  if (tail.slice(lastColon + 1).includes('.')) {
    // An embedded IPv4 address (RFC 4291 §2.2 form 3) fills the last 32 bits.
    v4 = Buffer.from(tail.slice(lastColon + 1).split('.').map(Number));
    tail = `${tail.slice(0, lastColon + 1)}0:0`;
  }
  const [head, rest] = tail.includes('::') ? (tail.split('::') as [string, string]) : [tail, undefined];
  const groups = (s: string) => (s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)));
  const left = groups(head);
  const right = rest === undefined ? [] : groups(rest);
  const all = rest === undefined ? left : [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  if (all.length !== 8) throw new RangeError(`"${ip}" is not an IP address`);
  all.forEach((g, i) => out.writeUInt16BE(g, 2 * i));
  if (v4) v4.copy(out, 12);
  return out;
}

// ---- reading ----

/** One DER element inside a buffer: its tag, and where its header and content lie. */
export interface DerElement {
  readonly tag: number;
  /** Offset of the identifier octet. */
  readonly start: number;
  /** Offset of the first content octet. */
  readonly contentStart: number;
  /** Offset just past the element. */
  readonly end: number;
}

/**
 * Reads the element at `offset`, which must lie within `limit` (default: the buffer's end).
 * Accepts only single-octet tags and definite, minimally encoded lengths (DER). Throws RangeError.
 */
export function readElement(der: Uint8Array, offset = 0, limit = der.length): DerElement {
  if (offset + 2 > limit) throw new RangeError('DER element truncated');
  const tag = der[offset]!;
  if ((tag & 0x1f) === 0x1f) throw new RangeError('multi-octet DER tags are not supported');
  const first = der[offset + 1]!;
  let length: number;
  let contentStart: number;
  if (first < 0x80) {
    length = first;
    contentStart = offset + 2;
  } else {
    const octets = first & 0x7f;
    if (octets === 0) throw new RangeError('indefinite length is not DER');
    if (octets > 4) throw new RangeError('DER length too large');
    if (offset + 2 + octets > limit) throw new RangeError('DER element truncated');
    length = 0;
    for (let i = 0; i < octets; i++) length = length * 256 + der[offset + 2 + i]!;
    if (length < 0x80 || der[offset + 2] === 0) throw new RangeError('DER length is not minimally encoded');
    contentStart = offset + 2 + octets;
  }
  const end = contentStart + length;
  if (end > limit) throw new RangeError('DER element truncated');
  return { tag, start: offset, contentStart, end };
}

/** The elements inside a constructed element, in order. */
export function readChildren(der: Uint8Array, parent: DerElement): DerElement[] {
  const out: DerElement[] = [];
  for (let at = parent.contentStart; at < parent.end; ) {
    const child = readElement(der, at, parent.end);
    out.push(child);
    at = child.end;
  }
  return out;
}

/** An element's complete encoding, header included (a view, not a copy). */
export const encodingOf = (der: Uint8Array, el: DerElement): Uint8Array => der.subarray(el.start, el.end);
/** An element's content octets (a view, not a copy). */
export const contentOf = (der: Uint8Array, el: DerElement): Uint8Array => der.subarray(el.contentStart, el.end);

/** An OBJECT IDENTIFIER's dotted decimal (X.690 §8.19), the inverse of `oid`. Throws RangeError on a malformed one. */
export function readOid(der: Uint8Array, el: DerElement): string {
  if (el.tag !== TAG.OID) throw new RangeError('not an OBJECT IDENTIFIER');
  const bytes = contentOf(der, el);
  if (bytes.length === 0 || (bytes[bytes.length - 1]! & 0x80) !== 0) throw new RangeError('OBJECT IDENTIFIER truncated');
  const subs: bigint[] = [];
  let value = 0n;
  let fresh = true;
  for (const b of bytes) {
    if (fresh && b === 0x80) throw new RangeError('OBJECT IDENTIFIER subidentifier is not minimally encoded');
    value = (value << 7n) | BigInt(b & 0x7f);
    fresh = (b & 0x80) === 0;
    if (fresh) {
      subs.push(value);
      value = 0n;
    }
  }
  const first = subs[0]!;
  const head = first < 40n ? [0n, first] : first < 80n ? [1n, first - 40n] : [2n, first - 80n];
  return [...head, ...subs.slice(1)].join('.');
}

/**
 * The text of a character-string element (X.680 §41), or undefined when it is not a string
 * type or its octets do not decode as that type. TeletexString is read as Latin-1, as most
 * software does; BMPString is UTF-16BE, UniversalString UTF-32BE.
 */
export function readString(der: Uint8Array, el: DerElement): string | undefined {
  const bytes = contentOf(der, el);
  try {
    switch (el.tag) {
      case TAG.UTF8_STRING:
        return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
      case TAG.NUMERIC_STRING:
      case TAG.PRINTABLE_STRING:
      case TAG.IA5_STRING:
      case TAG.VISIBLE_STRING:
        return bytes.every((b) => b < 0x80) ? Buffer.from(bytes).toString('latin1') : undefined;
      case TAG.TELETEX_STRING:
        return Buffer.from(bytes).toString('latin1');
      case TAG.BMP_STRING: {
        if (bytes.length % 2) return undefined;
        const le = Buffer.from(bytes); // a copy: swap16 works in place
        le.swap16();
        return new TextDecoder('utf-16le', { fatal: true }).decode(le);
      }
      case TAG.UNIVERSAL_STRING: {
        if (bytes.length % 4) return undefined;
        const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
        let s = '';
        for (let i = 0; i < bytes.length; i += 4) s += String.fromCodePoint(view.getUint32(i));
        return s;
      }
      default:
        return undefined;
    }
  } catch {
    return undefined; // an invalid code point or sequence
  }
}
