import { sha256 } from './hash';
import { isUuid } from './uuid';

describe('sha256', () => {
  // FIPS 180-4 examples (NIST CSRC "SHA256.pdf"): "abc".
  it('hashes the FIPS 180-4 example "abc"', () => {
    expect(sha256('abc', 'hex')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });
  it('hashes text as UTF-8, the same as its bytes', () => {
    expect(sha256('é', 'hex')).toBe(sha256(new Uint8Array([0xc3, 0xa9]), 'hex'));
    expect(sha256('abc')).toEqual(Buffer.from('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad', 'hex'));
  });
  it('encodes as base64url without padding', () => {
    expect(sha256('abc', 'base64url')).toBe('ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0');
  });
});

describe('isUuid', () => {
  it('accepts UUIDs of any version in either case', () => {
    expect(isUuid('1b4e28ba-2fa1-11d2-883f-0016d3cca427')).toBe(true);
    expect(isUuid('F47AC10B-58CC-4372-A567-0E02B2C3D479')).toBe(true);
  });
  it.each(['', 'f47ac10b58cc4372a5670e02b2c3d479', 'f47ac10b-58cc-4372-a567-0e02b2c3d47', 'f47ac10b-58cc-4372-a567-0e02b2c3d479 ', '{f47ac10b-58cc-4372-a567-0e02b2c3d479}', 'g47ac10b-58cc-4372-a567-0e02b2c3d479'])('refuses %j', (value) => {
    expect(isUuid(value)).toBe(false);
  });
});
