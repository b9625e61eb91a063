import fc from 'fast-check';
import { OAuthError } from './errors';
import { formatClientCert, parseClientCert, parseClientCertChain, ProxyTrust } from './client-cert';

const DER = new Uint8Array([0x30, 0x82, 0x01, 0x0a, 1, 2, 3, 4, 5]);
const PROXY = 'spiffe://writ.test/ingress';

describe('RFC 9440 Client-Cert from a trusted proxy', () => {
  it('parses the Byte Sequence forms of RFC 9440 §2.2 and §2.3', () => {
    expect(parseClientCert(formatClientCert(DER))).toEqual(DER);
    expect(parseClientCert(` ${formatClientCert(DER)} `)).toEqual(DER);
    expect(parseClientCertChain(`${formatClientCert(DER)}, ${formatClientCert(new Uint8Array([9]))}`)).toEqual([DER, new Uint8Array([9])]);
  });

  it('accepts a Byte Sequence without its "=" padding (RFC 8941 §4.2.7)', () => {
    expect(parseClientCert(':AQID:')).toEqual(new Uint8Array([1, 2, 3]));
    expect(parseClientCert(':AQ:')).toEqual(new Uint8Array([1]));
    expect(parseClientCert(':AQ==:')).toEqual(new Uint8Array([1]));
  });

  it.each(['', '::', 'AAAA', ':AAAA', ':AA=A:', ':A:', ':AQ=:', ':AA AA:', ':AAAA:;a=1', '"AAAA"', ':-_-_:'])('refuses %j', (value) => {
    expect(() => parseClientCert(value)).toThrow(/Byte Sequence/);
  });

  it('believes the header only from a proxy trusted by SPIFFE ID or address', () => {
    const trust = new ProxyTrust({ spiffeIds: [PROXY], addresses: ['10.0.0.0/24', '::1'] });
    const headers = { 'client-cert': formatClientCert(DER) };
    expect(trust.forwarded(headers, { address: '192.0.2.1', spiffeId: PROXY })?.certificate).toEqual(DER);
    expect(trust.forwarded(headers, { address: '::ffff:10.0.0.7' })?.certificate).toEqual(DER);
    expect(trust.forwarded(headers, { address: '::1' })?.certificate).toEqual(DER);
    expect(() => trust.forwarded(headers, { address: '10.0.1.7' })).toThrow(/trusted proxy/);
    expect(() => trust.forwarded(headers, { address: '10.0.0.7'.replace('0.0', '0.1'), spiffeId: 'spiffe://writ.test/agent' })).toThrow(/trusted proxy/);
    expect(() => trust.forwarded(headers, { address: undefined })).toThrow(/trusted proxy/);
    expect(trust.forwarded({}, { address: '203.0.113.9' })).toBeUndefined();
  });

  it('trusts nobody unless told, and refuses half or repeated headers', () => {
    const none = new ProxyTrust();
    expect(none.configured).toBe(false);
    expect(() => none.forwarded({ 'client-cert': formatClientCert(DER) }, { address: '127.0.0.1' })).toThrow(/trusted proxy/);
    const trust = new ProxyTrust({ addresses: ['127.0.0.1'] });
    expect(() => trust.forwarded({ 'client-cert-chain': formatClientCert(DER) }, { address: '127.0.0.1' })).toThrow(/without Client-Cert/);
    expect(() => trust.forwarded({ 'client-cert': [formatClientCert(DER), formatClientCert(DER)] }, { address: '127.0.0.1' })).toThrow(/once/);
  });

  it('refuses bad configuration at construction', () => {
    expect(() => new ProxyTrust({ addresses: ['10.0.0.0/33'] })).toThrow(/prefix/);
    expect(() => new ProxyTrust({ addresses: ['0.0.0.0/0'] })).toThrow(/wider than/);
    expect(() => new ProxyTrust({ addresses: ['::/0'] })).toThrow(/wider than/);
    expect(() => new ProxyTrust({ addresses: ['proxy.local'] })).toThrow(/not an IP/);
    expect(() => new ProxyTrust({ spiffeIds: ['ingress'] })).toThrow(/SPIFFE/);
  });

  it('never throws anything but an OAuth error for any header text (property)', () => {
    const trust = new ProxyTrust({ addresses: ['127.0.0.1'] });
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), fc.option(fc.string({ maxLength: 200 }), { nil: undefined }), (leaf, chain) => {
        try {
          trust.forwarded({ 'client-cert': leaf, ...(chain !== undefined && { 'client-cert-chain': chain }) }, { address: '127.0.0.1' });
        } catch (err) {
          expect(err).toBeInstanceOf(OAuthError);
        }
      }),
      { numRuns: Number(process.env.FC_RUNS ?? 300) },
    );
  });
});
