import { CookieJar, pkcePair } from './id-token';
import { SAMPLE_USERS } from './samples';
import { parseUsers } from './users';

test('the sample users: alice in eng, bob in eng and maintainers, carol in none', () => {
  const users = parseUsers(SAMPLE_USERS);
  expect([...users.keys()]).toEqual(['alice', 'bob', 'carol']);
  expect(users.get('bob')?.groups).toEqual(['eng', 'maintainers']);
  expect(users.get('carol')?.groups).toEqual([]);
});

test('a users file that names no user, a user with white space, or groups that are not a list is refused', () => {
  expect(() => parseUsers('users: {}')).toThrow(/at least one user/);
  expect(() => parseUsers('users:\n  "a b": {}')).toThrow(/users\.a b: Invalid key/);
  expect(() => parseUsers('users:\n  alice: { groups: eng }')).toThrow(/users\.alice\.groups/);
  expect(() => parseUsers('users: [')).toThrow(/not valid YAML/);
});

test('the cookie jar keeps cookies by name and drops expired ones (RFC 6265 §5.2)', () => {
  const jar = new CookieJar();
  jar.store(['_session=abc; path=/; httponly', '_interaction=x; path=/interaction/1'], 0);
  expect(jar.header()).toBe('_session=abc; _interaction=x');
  jar.store(['_interaction=; path=/interaction/1; expires=Thu, 01 Jan 1970 00:00:00 GMT', '_session=def; Max-Age=60'], 1000);
  expect(jar.header()).toBe('_session=def');
  jar.store(['_session=def; Max-Age=0'], 1000);
  expect(jar.size).toBe(0);
});

test('PKCE: a 43-character verifier and its S256 challenge (RFC 7636 §4.1, §4.2, appendix B)', () => {
  const { verifier, challenge } = pkcePair(() => new Uint8Array([116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173, 187, 186, 22, 212, 37, 77, 105, 214, 191, 240, 91, 88, 5, 88, 83, 132, 141, 121]));
  expect(verifier).toBe('dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk');
  expect(challenge).toBe('E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM');
});
