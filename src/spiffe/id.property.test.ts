import fc from 'fast-check';
import { BROKER_PATH, InvalidSpiffeId, isBrokerPath, parseSpiffeId, spiffeIdOf } from '.';

// SPIFFE IDs face the network (admin bodies, the kill switch's path, client certificates):
// whatever the input, parseSpiffeId accepts exactly what SPIFFE-ID §2 allows, or throws InvalidSpiffeId.

const RUNS = Number(process.env.FC_RUNS ?? 500);
const tdChar = fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789.-_'.split(''));
const segChar = fc.constantFrom(...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_'.split(''));
const trustDomain = fc.string({ unit: tdChar, minLength: 1, maxLength: 40 });
const segment = fc.string({ unit: segChar, minLength: 1, maxLength: 12 }).filter((s) => s !== '.' && s !== '..');
const path = fc.array(segment, { maxLength: 6 }).map((segs) => segs.map((s) => `/${s}`).join(''));
/** Text near a SPIFFE ID: the scheme, separators, escapes, control characters and any code point. */
const nearId = fc
  .array(fc.oneof(fc.constantFrom('spiffe://', 'SPIFFE://', '/', '//', '.', '..', '%', '%2F', '?', '#', '@', ':', '\u0000', '\u007f', '\n', ' ', 'a', 'Z', '-', '_', 'é', '\ud800'), fc.string({ unit: 'binary', maxLength: 4 })), { maxLength: 16 })
  .map((parts) => parts.join(''));

/** Runs parseSpiffeId; answers the ID, or the InvalidSpiffeId it threw (anything else fails the property). */
function attempt(uri: string) {
  try {
    return parseSpiffeId(uri);
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidSpiffeId);
    expect((err as InvalidSpiffeId).status).toBe(400);
    return err as InvalidSpiffeId;
  }
}

describe('parseSpiffeId (SPIFFE-ID §2), properties', () => {
  it('accepts every well-formed ID and gives back its parts', () => {
    fc.assert(
      fc.property(trustDomain, path, (td, p) => {
        const id = parseSpiffeId(`spiffe://${td}${p}`);
        expect(id).toEqual({ trustDomain: td, path: p, uri: `spiffe://${td}${p}` });
        expect(spiffeIdOf(td, p)).toEqual(id);
      }),
      { numRuns: RUNS },
    );
  });

  it('on any text, either throws InvalidSpiffeId or returns an ID that re-parses to itself and holds only allowed characters', () => {
    fc.assert(
      fc.property(fc.oneof(nearId, fc.string({ unit: 'binary', maxLength: 80 }), fc.tuple(trustDomain, path, nearId).map(([td, p, x]) => `spiffe://${td}${p}${x}`)), (uri) => {
        const r = attempt(uri);
        if (r instanceof InvalidSpiffeId) return;
        expect(r.uri).toBe(uri);
        expect(parseSpiffeId(r.uri)).toEqual(r);
        expect(r.trustDomain).toMatch(/^[a-z0-9._-]+$/);
        expect(r.path).toMatch(/^(\/[A-Za-z0-9._-]+)*$/);
        expect(r.path.split('/')).not.toContain('..');
        expect(Buffer.byteLength(uri)).toBeLessThanOrEqual(2048);
      }),
      { numRuns: RUNS },
    );
  });

  it('never accepts a control character, a percent sign, a query or a fragment', () => {
    fc.assert(
      fc.property(trustDomain, path, fc.constantFrom('\u0000', '\u0001', '\u001f', '\u007f', '\t', '\n', '%00', '%2F', '?', '#x'), fc.nat(), (td, p, bad, at) => {
        const uri = `spiffe://${td}${p}`;
        const i = 'spiffe://'.length + (at % (uri.length - 'spiffe://'.length + 1));
        expect(attempt(uri.slice(0, i) + bad + uri.slice(i))).toBeInstanceOf(InvalidSpiffeId);
      }),
      { numRuns: RUNS },
    );
  });

  it('isBrokerPath is exactly /writ and what is under /writ/', () => {
    fc.assert(
      fc.property(path, segment, (p, s) => {
        expect(isBrokerPath(p)).toBe(p === BROKER_PATH || p.startsWith(`${BROKER_PATH}/`));
        expect(isBrokerPath(`${BROKER_PATH}${p}`)).toBe(true);
        expect(isBrokerPath(`${BROKER_PATH}${s}${p}`)).toBe(false); // /writer, /writ.old
        expect(isBrokerPath(`/${s}${BROKER_PATH}${p}`)).toBe(s === 'writ'); // /team/writ
      }),
      { numRuns: RUNS },
    );
  });
});
