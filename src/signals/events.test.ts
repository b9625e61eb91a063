import { SetError } from './errors';
import { EVENT_TYPE, intentsOf, type Intent } from './events';
import type { EventPayload, VerifiedSet } from './set';

const TRANSMITTER = 'https://idp.example.com';
const OTHER_IDP = 'https://login.example.org';

/** A SET as SetReceiver returns it: only the members intentsOf reads matter. */
function verified(events: Record<string, EventPayload>, subId?: Record<string, unknown>, subjectIssuers: string[] = [TRANSMITTER]): VerifiedSet {
  return {
    iss: TRANSMITTER,
    jti: 'j1',
    iat: new Date('2026-11-27T12:00:00Z'),
    aud: ['https://writ.example.com'],
    events,
    ...(subId ? { subId } : {}),
    subjectIssuers,
    claims: {},
  };
}

const one = (set: VerifiedSet): Intent => {
  const intents = intentsOf(set);
  expect(intents).toHaveLength(1);
  return intents[0]!;
};

const base = (eventType: string) => ({ eventType, transmitter: TRANSMITTER });
const alice = { format: 'iss_sub', iss: TRANSMITTER, sub: 'alice' };
const session = { format: 'opaque', id: 'sess-42' };

function malformed(set: VerifiedSet): SetError {
  try {
    intentsOf(set);
  } catch (err) {
    expect(err).toBeInstanceOf(SetError);
    expect((err as SetError).err).toBe('invalid_request');
    return err as SetError;
  }
  throw new Error('expected intentsOf to refuse the payload');
}

describe('CAEP 1.0 §3.1 session-revoked → revoke-session', () => {
  const event = EVENT_TYPE.SESSION_REVOKED;

  it('an opaque subject (RFC 9493 §3.2.4) is a session ID of the transmitter', () => {
    expect(one(verified({ [event]: {} }, session))).toEqual({ ...base(event), kind: 'revoke-session', issuer: TRANSMITTER, sid: 'sess-42' });
  });

  it('a complex subject (SSF §3.3) gives the user and the session', () => {
    const subject = { format: 'complex', user: alice, session, tenant: { format: 'opaque', id: 't-1' } };
    expect(one(verified({ [event]: {} }, subject))).toEqual({ ...base(event), kind: 'revoke-session', issuer: TRANSMITTER, sub: 'alice', sid: 'sess-42' });
  });

  it('a complex subject without "format" (SSF drafts) is read the same', () => {
    expect(one(verified({ [event]: {} }, { user: alice, session }))).toMatchObject({ kind: 'revoke-session', sub: 'alice', sid: 'sess-42' });
  });

  it('a user alone (iss_sub or email) means every session of that user: no sid', () => {
    expect(one(verified({ [event]: {} }, alice))).toEqual({ ...base(event), kind: 'revoke-session', issuer: TRANSMITTER, sub: 'alice' });
    expect(one(verified({ [event]: {} }, { format: 'email', email: 'alice@example.com' }))).toEqual({
      ...base(event),
      kind: 'revoke-session',
      issuer: TRANSMITTER,
      email: 'alice@example.com',
    });
  });

  it('reads the per-event "subject" member (CAEP drafts) before the SET\'s sub_id', () => {
    const set = verified({ [event]: { subject: session, reason_admin: { en: 'Landspeed policy violation' } } }, alice);
    expect(one(set)).toEqual({ ...base(event), kind: 'revoke-session', issuer: TRANSMITTER, sid: 'sess-42' });
  });

  it('a complex subject naming only a device or tenant is unresolvable', () => {
    const intent = one(verified({ [event]: {} }, { format: 'complex', device: { format: 'opaque', id: 'd-1' } }));
    expect(intent).toMatchObject({ ...base(event), kind: 'unresolvable', reason: expect.stringMatching(/names no user or session \(members: "device"\)/) });
  });
});

describe('CAEP 1.0 §3.3 credential-change, RISC account-disabled and account-purged → revoke-user', () => {
  it.each([EVENT_TYPE.CREDENTIAL_CHANGE, EVENT_TYPE.ACCOUNT_DISABLED, EVENT_TYPE.ACCOUNT_PURGED])('%s of an iss_sub user', (event) => {
    expect(one(verified({ [event]: {} }, alice))).toEqual({ ...base(event), kind: 'revoke-user', issuer: TRANSMITTER, sub: 'alice' });
  });

  it('reads the RISC draft subject ("subject_type": "iss-sub" in the event, as Google sends it)', () => {
    const event = EVENT_TYPE.ACCOUNT_DISABLED;
    const set = verified({ [event]: { subject: { subject_type: 'iss-sub', iss: TRANSMITTER, sub: '7375626A656374' }, reason: 'hijacking' } });
    expect(one(set)).toEqual({ ...base(event), kind: 'revoke-user', issuer: TRANSMITTER, sub: '7375626A656374' });
  });

  it('a complex subject with a user and a session revokes the whole user', () => {
    const event = EVENT_TYPE.CREDENTIAL_CHANGE;
    expect(one(verified({ [event]: { credential_type: 'fido2-roaming', change_type: 'delete' } }, { format: 'complex', user: alice, session }))).toEqual({
      ...base(event),
      kind: 'revoke-user',
      issuer: TRANSMITTER,
      sub: 'alice',
    });
  });

  it('does not refuse a revocation for want of descriptive members (credential_type, change_type, reason)', () => {
    expect(one(verified({ [EVENT_TYPE.CREDENTIAL_CHANGE]: {} }, alice))).toMatchObject({ kind: 'revoke-user' });
  });

  it('an opaque subject names no user: unresolvable', () => {
    expect(one(verified({ [EVENT_TYPE.ACCOUNT_PURGED]: {} }, session))).toMatchObject({ kind: 'unresolvable', reason: expect.stringMatching(/names a session, not a user/) });
  });

  it('aliases (RFC 9493 §3.2.8): the first iss_sub identifier, else the first email', () => {
    const event = EVENT_TYPE.ACCOUNT_DISABLED;
    const aliases = (...identifiers: unknown[]) => verified({ [event]: {} }, { format: 'aliases', identifiers });
    const email = { format: 'email', email: 'alice@example.com' };
    const phone = { format: 'phone_number', phone_number: '+12065550100' };
    expect(one(aliases(phone, email, alice))).toMatchObject({ kind: 'revoke-user', sub: 'alice' });
    expect(one(aliases(phone, email))).toMatchObject({ kind: 'revoke-user', email: 'alice@example.com' });
    expect(one(aliases(phone, session))).toMatchObject({ kind: 'unresolvable', reason: expect.stringMatching(/no alias is an iss_sub or email identifier/) });
  });
});

describe('RFC 9493 subjects Writ cannot map to a user: unresolvable, acknowledged not applied', () => {
  const event = EVENT_TYPE.ACCOUNT_DISABLED;

  it('a user of an issuer the transmitter may not speak for', () => {
    const set = verified({ [event]: {} }, { format: 'iss_sub', iss: OTHER_IDP, sub: 'alice' });
    expect(one(set)).toMatchObject({ ...base(event), kind: 'unresolvable', reason: expect.stringMatching(/user of "https:\/\/login\.example\.org", which transmitter https:\/\/idp\.example\.com may not speak for/) });
  });

  it('…unless that issuer is among its subject_issuers: then the intent is in that issuer', () => {
    const set = verified({ [event]: {} }, { format: 'iss_sub', iss: OTHER_IDP, sub: 'alice' }, [TRANSMITTER, OTHER_IDP]);
    expect(one(set)).toEqual({ ...base(event), kind: 'revoke-user', issuer: OTHER_IDP, sub: 'alice' });
  });

  it('a foreign user inside a complex subject makes the whole subject unresolvable, session included', () => {
    const set = verified({ [EVENT_TYPE.SESSION_REVOKED]: {} }, { format: 'complex', user: { format: 'iss_sub', iss: OTHER_IDP, sub: 'alice' }, session });
    expect(one(set)).toMatchObject({ kind: 'unresolvable' });
  });

  it.each([
    [{ format: 'phone_number', phone_number: '+12065550100' }, /subject format "phone_number" names no user/],
    [{ format: 'did', url: 'did:example:123' }, /subject format "did"/],
    [{ format: 'complex', user: { format: 'opaque', id: 'u-1' } }, /"user" is an opaque identifier/],
  ])('subject %j', (subject, reason) => {
    expect(one(verified({ [event]: {} }, subject))).toMatchObject({ kind: 'unresolvable', reason: expect.stringMatching(reason) });
  });

  it('an event without any subject', () => {
    expect(one(verified({ [event]: {} }))).toMatchObject({ kind: 'unresolvable', reason: expect.stringMatching(/names no subject/) });
  });
});

describe('RFC 8935 §2.4 invalid_request: a subject that does not conform to RFC 9493', () => {
  const event = EVENT_TYPE.SESSION_REVOKED;

  it.each([
    [{ format: 'iss_sub', iss: TRANSMITTER }, /iss_sub needs "iss" and "sub"/],
    [{ format: 'email', email: '' }, /email needs an "email" string/],
    [{ format: 'opaque' }, /opaque needs an "id" string/],
    [{ iss: TRANSMITTER, sub: 'alice' }, /has no "format"/],
    [{ format: 'aliases', identifiers: [] }, /non-empty "identifiers" array/],
    [{ format: 'aliases', identifiers: [{ format: 'aliases', identifiers: [alice] }] }, /nests aliases/],
    [{ format: 'complex', user: { format: 'complex', user: alice } }, /nests a complex subject/],
  ])('refuses %j', (subject, message) => {
    expect(malformed(verified({ [event]: {} }, subject)).description).toMatch(message);
  });

  it('refuses a per-event subject that is not an object', () => {
    expect(malformed(verified({ [event]: { subject: 'alice' } })).description).toMatch(/the event's "subject" must be a subject identifier object/);
  });

  it.each([
    [{ format: 'iss_sub', iss: TRANSMITTER, sub: 'alice\u0000' }, '"sub" in "sub_id" contains a control character'],
    [{ format: 'iss_sub', iss: `${TRANSMITTER}\u0001`, sub: 'alice' }, '"iss" in "sub_id" contains a control character'],
    [{ format: 'email', email: 'a\u0000@example.com' }, '"email" in "sub_id" contains a control character'],
    [{ format: 'opaque', id: 'sess\n42' }, '"id" in "sub_id" contains a control character'],
    [{ format: 'complex', user: { format: 'iss_sub', iss: TRANSMITTER, sub: 'a\u007f' } }, '"sub" in "sub_id".user contains a control character'],
  ])('refuses an identifier with a control character: %j', (subject, message) => {
    expect(malformed(verified({ [event]: {} }, subject)).description).toContain(message);
  });
});

describe('CAEP 1.0 §3.8 risk-level-change and §3.4 assurance-level-change → risk-level', () => {
  const risk = EVENT_TYPE.RISK_LEVEL_CHANGE;
  const assurance = EVENT_TYPE.ASSURANCE_LEVEL_CHANGE;

  it('a user\'s risk level (principal USER), upper-cased, with the previous level', () => {
    expect(one(verified({ [risk]: { principal: 'user', current_level: 'medium', previous_level: 'low', risk_reason: 'impossible travel' } }, { format: 'complex', user: alice, session }))).toEqual({
      ...base(risk),
      kind: 'risk-level',
      scale: 'risk',
      level: 'MEDIUM',
      previousLevel: 'LOW',
      issuer: TRANSMITTER,
      sub: 'alice',
    });
  });

  it('a session\'s risk level (principal SESSION) keeps the sid', () => {
    expect(one(verified({ [risk]: { principal: 'SESSION', current_level: 'HIGH' } }, session))).toEqual({
      ...base(risk),
      kind: 'risk-level',
      scale: 'risk',
      level: 'HIGH',
      issuer: TRANSMITTER,
      sid: 'sess-42',
    });
  });

  it('without a principal, the subject decides', () => {
    expect(one(verified({ [risk]: { current_level: 'LOW' } }, alice))).toMatchObject({ kind: 'risk-level', level: 'LOW', sub: 'alice' });
  });

  it('the risk of a DEVICE or TENANT, or a principal the subject does not name, is unresolvable', () => {
    expect(one(verified({ [risk]: { principal: 'DEVICE', current_level: 'HIGH' } }, alice))).toMatchObject({ kind: 'unresolvable', reason: expect.stringMatching(/that of a "DEVICE"/) });
    expect(one(verified({ [risk]: { principal: 'SESSION', current_level: 'HIGH' } }, alice))).toMatchObject({ kind: 'unresolvable', reason: expect.stringMatching(/names no session/) });
    expect(one(verified({ [risk]: { principal: 'USER', current_level: 'HIGH' } }, session))).toMatchObject({ kind: 'unresolvable', reason: expect.stringMatching(/names no user/) });
  });

  it('refuses a risk level that is missing or not LOW, MEDIUM or HIGH, and a principal that is not a string', () => {
    expect(malformed(verified({ [risk]: { principal: 'USER' } }, alice)).description).toMatch(/"current_level" is required/);
    expect(malformed(verified({ [risk]: { current_level: 3 } }, alice)).description).toMatch(/"current_level" must be one of LOW, MEDIUM, HIGH/);
    expect(malformed(verified({ [risk]: { current_level: 'HIGH', previous_level: 'NONE' } }, alice)).description).toMatch(/"previous_level" must be one of/);
    expect(malformed(verified({ [risk]: { current_level: 'HIGH', principal: ['USER'] } }, alice)).description).toMatch(/"principal" must be a string/);
  });

  it('an assurance level within its namespace', () => {
    expect(one(verified({ [assurance]: { namespace: 'NIST-AAL', current_level: 'nist-aal1', previous_level: 'nist-aal2', change_direction: 'decrease' } }, alice))).toEqual({
      ...base(assurance),
      kind: 'risk-level',
      scale: 'assurance',
      namespace: 'NIST-AAL',
      level: 'nist-aal1',
      previousLevel: 'nist-aal2',
      issuer: TRANSMITTER,
      sub: 'alice',
    });
  });

  it('refuses an assurance namespace or level with a control character (they are recorded)', () => {
    expect(malformed(verified({ [assurance]: { namespace: 'NIST\u0000', current_level: 'nist-aal1' } }, alice)).description).toContain('"namespace" in the event contains a control character');
    expect(malformed(verified({ [assurance]: { namespace: 'NIST-AAL', current_level: 'nist-aal1', previous_level: 'a\u0001' } }, alice)).description).toContain('"previous_level" in the event contains a control character');
  });

  it('refuses an assurance level without namespace or current_level', () => {
    expect(malformed(verified({ [assurance]: { current_level: 'nist-aal1' } }, alice)).description).toMatch(/"namespace" is required/);
    expect(malformed(verified({ [assurance]: { namespace: 'NIST-AAL' } }, alice)).description).toMatch(/"current_level" is required/);
  });
});

describe('RFC 8417 §2.2: every event of the SET, unknown types ignored', () => {
  it('maps each event in order; an unknown event type is ignored, not refused', () => {
    const set = verified(
      {
        'https://schemas.openid.net/secevent/caep/event-type/device-compliance-change': { current_status: 'not-compliant', previous_status: 'compliant' },
        [EVENT_TYPE.CREDENTIAL_CHANGE]: { credential_type: 'password', change_type: 'update' },
        'https://schemas.openid.net/secevent/risc/event-type/account-credential-change-required': {},
      },
      alice,
    );
    expect(intentsOf(set)).toEqual([
      { kind: 'ignored', eventType: 'https://schemas.openid.net/secevent/caep/event-type/device-compliance-change', transmitter: TRANSMITTER },
      { kind: 'revoke-user', eventType: EVENT_TYPE.CREDENTIAL_CHANGE, transmitter: TRANSMITTER, issuer: TRANSMITTER, sub: 'alice' },
      { kind: 'ignored', eventType: 'https://schemas.openid.net/secevent/risc/event-type/account-credential-change-required', transmitter: TRANSMITTER },
    ]);
  });

  it('an unknown event type with a malformed subject is still only ignored', () => {
    expect(one(verified({ 'urn:example:event:custom': { subject: 'x' } }))).toEqual({ kind: 'ignored', eventType: 'urn:example:event:custom', transmitter: TRANSMITTER });
  });
});
