import {
  AccessDeniedError,
  InvalidAuthorizationDetailsError,
  InvalidClientError,
  InvalidGrantError,
  InvalidRequestError,
  InvalidScopeError,
  InvalidTargetError,
  oauthErrorFrom,
  TemporarilyUnavailableError,
  UnauthorizedClientError,
  UnsupportedGrantTypeError,
  WritError,
  WritOAuthError,
  WritProblemError,
} from './errors';

describe('RFC 6749 §5.2 error codes map to one typed error each', () => {
  it.each([
    ['invalid_request', InvalidRequestError, 400],
    ['invalid_client', InvalidClientError, 401],
    ['invalid_grant', InvalidGrantError, 400],
    ['unauthorized_client', UnauthorizedClientError, 400],
    ['unsupported_grant_type', UnsupportedGrantTypeError, 400],
    ['invalid_scope', InvalidScopeError, 400],
    ['invalid_target', InvalidTargetError, 400], // RFC 8707 §2
    ['invalid_authorization_details', InvalidAuthorizationDetailsError, 400], // RFC 9396 §5
    ['access_denied', AccessDeniedError, 400],
    ['temporarily_unavailable', TemporarilyUnavailableError, 503],
  ])('%s', (code, Class, status) => {
    const err = oauthErrorFrom(code, 'the broker said why', status);
    expect(err).toBeInstanceOf(Class);
    expect(err).toBeInstanceOf(WritOAuthError);
    expect(err).toBeInstanceOf(WritError);
    expect(err).toMatchObject({ error: code, error_description: 'the broker said why', status });
  });

  it('an unknown code is a plain WritOAuthError that keeps the code, never one of the known classes', () => {
    const err = oauthErrorFrom('slow_down', 'later', 400);
    expect(err.constructor).toBe(WritOAuthError);
    expect(err).toMatchObject({ error: 'slow_down', error_description: 'later', status: 400 });
  });

  it('a code named like an Object.prototype member is unknown, not a crash', () => {
    expect(oauthErrorFrom('constructor', '', 400).constructor).toBe(WritOAuthError);
    expect(oauthErrorFrom('__proto__', '', 400).constructor).toBe(WritOAuthError);
  });
});

describe('RFC 9457 problem details', () => {
  it('carry the type, title, status and detail; reason is the part after urn:writ:problem:', () => {
    const err = new WritProblemError({ type: 'urn:writ:problem:entry-disabled', title: 'Entry disabled', status: 403, detail: 'the entry is disabled', entry_id: 'e-1' });
    expect(err).toMatchObject({ type: 'urn:writ:problem:entry-disabled', title: 'Entry disabled', status: 403, detail: 'the entry is disabled', reason: 'entry-disabled' });
    expect(err.problem).toMatchObject({ entry_id: 'e-1' });
    expect(err.message).toBe('Entry disabled: the entry is disabled (urn:writ:problem:entry-disabled)');
  });

  it('a foreign problem type is its own reason; without detail the message is title and type', () => {
    const err = new WritProblemError({ type: 'https://example.test/problems/x', title: 'X', status: 400 });
    expect(err.reason).toBe('https://example.test/problems/x');
    expect(err.message).toBe('X (https://example.test/problems/x)');
  });
});
