import { DomainError } from '../core/errors';
import {
  AccessDenied,
  InsufficientScope,
  InvalidAuthorizationDetails,
  InvalidClient,
  InvalidGrant,
  InvalidRequest,
  InvalidTarget,
  InvalidToken,
  InvalidDpopProof,
  OAUTH_ERROR_CODES,
  OAUTH_ERROR_STATUS,
  UseDpopNonce,
  OAuthError,
  oauthError,
  TemporarilyUnavailable,
  UnauthorizedClient,
  UnsupportedGrantType,
  oauthText,
} from './errors';

describe('RFC 6749 §5.2 error response', () => {
  it('carries the bare error code as type, the description as message, and is a DomainError', () => {
    const err = new InvalidGrant('the subject token has expired');
    expect(err).toBeInstanceOf(OAuthError);
    expect(err).toBeInstanceOf(DomainError);
    expect(err.type).toBe('invalid_grant');
    expect(err.error).toBe('invalid_grant');
    expect(err.error_description).toBe('the subject token has expired');
    expect(err.status).toBe(400);
    expect(err.name).toBe('InvalidGrant');
    expect(JSON.parse(JSON.stringify(err))).toEqual({ error: 'invalid_grant', error_description: 'the subject token has expired' });
  });

  it('keeps internal detail in cause, out of the body', () => {
    const cause = new Error('jose: ERR_JWS_SIGNATURE_VERIFICATION_FAILED');
    const err = new InvalidGrant('bad signature', { cause });
    expect(err.cause).toBe(cause);
    expect(JSON.stringify(err)).not.toContain('jose');
  });

  it.each([
    [InvalidRequest, 'invalid_request', 400],
    [InvalidClient, 'invalid_client', 401],
    [InvalidGrant, 'invalid_grant', 400],
    [UnauthorizedClient, 'unauthorized_client', 400],
    [UnsupportedGrantType, 'unsupported_grant_type', 400],
    [InvalidTarget, 'invalid_target', 400],
    [InvalidAuthorizationDetails, 'invalid_authorization_details', 400],
    [AccessDenied, 'access_denied', 400],
    [TemporarilyUnavailable, 'temporarily_unavailable', 503],
    [InvalidToken, 'invalid_token', 401],
    [InsufficientScope, 'insufficient_scope', 403],
    [InvalidDpopProof, 'invalid_dpop_proof', 400],
  ] as const)('%p is %s with HTTP %d', (Class, code, status) => {
    const err = new Class('x');
    expect(err.type).toBe(code);
    expect(err.status).toBe(status);
  });

  it('oauthError(code) builds the class of the code', () => {
    for (const code of OAUTH_ERROR_CODES) {
      const err = oauthError(code, 'why');
      expect(err.type).toBe(code);
      expect(err.constructor).not.toBe(OAuthError);
    }
    expect(oauthError('invalid_target', 'x')).toBeInstanceOf(InvalidTarget);
  });

  it('RFC 9449 §12.2: the DPoP codes are OAuth codes (400 at the token endpoint), built as their classes', () => {
    expect(OAUTH_ERROR_CODES).toEqual(expect.arrayContaining(['invalid_dpop_proof', 'use_dpop_nonce']));
    expect(OAUTH_ERROR_STATUS.invalid_dpop_proof).toBe(400);
    expect(OAUTH_ERROR_STATUS.use_dpop_nonce).toBe(400);
    expect(oauthError('invalid_dpop_proof', 'x')).toBeInstanceOf(InvalidDpopProof);
    const nonce = oauthError('use_dpop_nonce', 'x');
    expect(nonce).toBeInstanceOf(UseDpopNonce);
    expect((nonce as UseDpopNonce).nonce).toBe('');
    expect(new UseDpopNonce('n', 'x').toJSON()).toEqual({ error: 'use_dpop_nonce', error_description: 'x' });
    expect(new UseDpopNonce('n', 'x').forResource().status).toBe(401);
  });
});

describe('oauthText (RFC 6749 §5.2 error_description characters)', () => {
  it('writes § as "section", a double quote as a single one, and anything else outside the set as ?', () => {
    expect(oauthText('the "exp" claim is in the past (RFC 7519 §4.1.4)')).toBe("the 'exp' claim is in the past (RFC 7519 section 4.1.4)");
    expect(oauthText('tab\there, ü, back\\slash')).toBe('tab?here, ?, back?slash');
  });
});
