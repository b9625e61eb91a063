/**
 * What a verified SET asks Writ to do: one intent per event, decided here and applied
 * elsewhere (the lease store revokes, policy records the level, the audit trail records all).
 *
 * | event type (RFC 8417 §2.2 `events` member)                  | intent            |
 * | ----------------------------------------------------------- | ----------------- |
 * | CAEP `session-revoked`                                      | `revoke-session`  |
 * | CAEP `credential-change`, RISC `account-disabled`, `account-purged` | `revoke-user` |
 * | CAEP `risk-level-change`, `assurance-level-change`          | `risk-level`      |
 * | anything else                                               | `ignored`         |
 *
 * A known event whose subject names no user or session Writ can find is `unresolvable`
 * (acknowledged and audited, not applied).
 *
 * The subject (who the event is about) is read from the event's own `subject` member (CAEP
 * and RISC events as first defined, and Google's RISC) and, when the event has none, from the
 * SET's top-level `sub_id` claim (OpenID SSF 1.0 §3, RFC 9493 §4). The SET's `sub` claim is
 * not read: SSF does not use it for subjects. Subject identifier formats (RFC 9493 §3.2, SSF §3):
 *
 * - `iss_sub` {iss, sub}: a user. `iss` must be the transmitter's own issuer or one of its
 *   configured `subject_issuers`; a transmitter naming another issuer's user is `unresolvable`.
 *   The RISC draft spelling `subject_type: "iss-sub"` is read as the same.
 * - `email` {email}: a user, in the namespace of the transmitter's issuer (given as sent).
 * - `opaque` {id}: a session ID (`sid`) of the transmitter's issuer. It names no user, so it
 *   serves `session-revoked` and session risk, and is `unresolvable` for user-wide events.
 * - `complex` (SSF §3.3; also an object with `user`/`session` members and no `format`, as SSF
 *   drafts had it): its `user` member as above, its `session` member (`opaque`) as the `sid`;
 *   `device`, `tenant`, `application`, `org_unit` and `group` are not read.
 * - `aliases` {identifiers}: the first `iss_sub` identifier, else the first `email`.
 * - Any other format (`phone_number`, `account`, `did`, `uri`, …) is `unresolvable`.
 *
 * A subject that is malformed (not an object, no `format`, `iss_sub` without `sub`, …) or an
 * event payload that lacks what Writ needs to act (a risk or assurance level) does not conform
 * to its event's definition: {@link SetError} `invalid_request` (RFC 8935 §2.4). Descriptive
 * members Writ does not act on (`reason_admin`, `credential_type`, `change_type`, `reason`,
 * `risk_reason`, …) are not checked: a revocation is never refused for want of a description.
 *
 * Levels (CAEP 1.0 §3.4 Assurance Level Change, §3.8 Risk Level Change): `current_level`
 * (required) and `previous_level` (optional) in both; risk levels are `LOW`, `MEDIUM` or
 * `HIGH` (read in any case, given upper-case); assurance levels are strings within the
 * event's required `namespace` (`RFC8176`, `NIST-AAL`, …). A risk event's `principal`
 * (`USER`, `SESSION`; optional here) says whose level it is; any other principal (`DEVICE`,
 * `TENANT`, …) is `unresolvable`.
 *
 * ```ts
 * for (const intent of intentsOf(set)) {
 *   if (intent.kind === 'revoke-user') await leases.revokeUser(intent.issuer, intent.sub ?? …);
 * }
 * ```
 */
import { quote, textProblem } from '../core/text';
import { SetError } from './errors';
import type { EventPayload, VerifiedSet } from './set';

const CAEP = 'https://schemas.openid.net/secevent/caep/event-type/';
const RISC = 'https://schemas.openid.net/secevent/risc/event-type/';

/** The event types Writ acts on. */
export const EVENT_TYPE = {
  SESSION_REVOKED: `${CAEP}session-revoked`,
  CREDENTIAL_CHANGE: `${CAEP}credential-change`,
  ASSURANCE_LEVEL_CHANGE: `${CAEP}assurance-level-change`,
  RISK_LEVEL_CHANGE: `${CAEP}risk-level-change`,
  ACCOUNT_DISABLED: `${RISC}account-disabled`,
  ACCOUNT_PURGED: `${RISC}account-purged`,
} as const;

/** CAEP 1.0 §3.8.1: the values of a risk level. */
export const RISK_LEVELS = ['LOW', 'MEDIUM', 'HIGH'] as const;
export type RiskLevel = (typeof RISK_LEVELS)[number];

// ---------------------------------------------------------------------------------------
// Intents.
// ---------------------------------------------------------------------------------------

interface IntentBase {
  /** The event type URI the intent comes from. */
  readonly eventType: string;
  /** The SET's `iss`. */
  readonly transmitter: string;
}

/** A user, by subject or by email address, within an intent's `issuer`. */
export type UserRef = { readonly sub: string; readonly email?: undefined } | { readonly email: string; readonly sub?: undefined };

/**
 * What an event is about, within `issuer` (an `iss_sub` subject's `iss`; otherwise the
 * transmitter's issuer): a user, a session of a user, or a session alone.
 */
export type SubjectRef = { readonly issuer: string } & ((UserRef & { readonly sid?: string }) | { readonly sid: string; readonly sub?: undefined; readonly email?: undefined });

/**
 * CAEP session-revoked: end the session `sid`. Without `sid` the event named only the user,
 * which CAEP 1.0 §3.1 reads as every session matching it: all of the user's sessions.
 */
export type RevokeSessionIntent = IntentBase & { readonly kind: 'revoke-session' } & SubjectRef;

/** CAEP credential-change, RISC account-disabled / account-purged: end everything the user holds. */
export type RevokeUserIntent = IntentBase & { readonly kind: 'revoke-user'; readonly issuer: string } & UserRef;

/** CAEP risk-level-change (`scale: 'risk'`) or assurance-level-change (`scale: 'assurance'`): record the level. */
export type RiskLevelIntent = IntentBase & {
  readonly kind: 'risk-level';
  readonly scale: 'risk' | 'assurance';
  /** `current_level`: for risk, one of {@link RISK_LEVELS}; for assurance, a level within `namespace`. */
  readonly level: string;
  readonly previousLevel?: string;
  /** The assurance level's namespace (CAEP 1.0 §3.4.1), for `scale: 'assurance'`. */
  readonly namespace?: string;
} & SubjectRef;

/** An event type Writ does not act on: acknowledged and audited. */
export interface IgnoredIntent extends IntentBase {
  readonly kind: 'ignored';
}

/** A known event whose subject names no user or session Writ can find: acknowledged and audited, not applied. */
export interface UnresolvableIntent extends IntentBase {
  readonly kind: 'unresolvable';
  /** Why, safe to record and show. */
  readonly reason: string;
}

export type Intent = RevokeSessionIntent | RevokeUserIntent | RiskLevelIntent | IgnoredIntent | UnresolvableIntent;

/**
 * One intent per event of a verified SET, in the order of its `events` claim. Pure. Throws
 * {@link SetError} `invalid_request` for a payload that does not conform to its event's
 * definition, which {@link SetReceiver.receive} has already refused: a SET it returned never throws here.
 */
export function intentsOf(set: VerifiedSet): Intent[] {
  return Object.entries(set.events).map(([eventType, payload]) => intentOf(set, eventType, payload));
}

function intentOf(set: VerifiedSet, eventType: string, payload: EventPayload): Intent {
  const base: IntentBase = { eventType, transmitter: set.iss };
  switch (eventType) {
    case EVENT_TYPE.SESSION_REVOKED: {
      const subject = subjectOf(set, eventType, payload);
      if ('reason' in subject) return { ...base, kind: 'unresolvable', reason: subject.reason };
      return { ...base, kind: 'revoke-session', ...subject };
    }
    case EVENT_TYPE.CREDENTIAL_CHANGE:
    case EVENT_TYPE.ACCOUNT_DISABLED:
    case EVENT_TYPE.ACCOUNT_PURGED: {
      const subject = subjectOf(set, eventType, payload);
      if ('reason' in subject) return { ...base, kind: 'unresolvable', reason: subject.reason };
      if (subject.sub === undefined && subject.email === undefined) {
        return { ...base, kind: 'unresolvable', reason: 'the subject names a session, not a user, and the event is about a user' };
      }
      return { ...base, kind: 'revoke-user', issuer: subject.issuer, ...userOf(subject) };
    }
    case EVENT_TYPE.RISK_LEVEL_CHANGE:
      return riskLevelChange(set, base, payload);
    case EVENT_TYPE.ASSURANCE_LEVEL_CHANGE:
      return assuranceLevelChange(set, base, payload);
    default:
      return { ...base, kind: 'ignored' };
  }
}

const userOf = (s: SubjectRef): UserRef => (s.sub !== undefined ? { sub: s.sub } : { email: s.email as string });

/** CAEP 1.0 §3.8: `current_level` (LOW, MEDIUM, HIGH), `previous_level`, `principal`. */
function riskLevelChange(set: VerifiedSet, base: IntentBase, payload: EventPayload): Intent {
  const level = riskLevel(payload.current_level, 'current_level', base.eventType);
  if (level === undefined) throw malformed(base.eventType, '"current_level" is required: LOW, MEDIUM or HIGH (CAEP 1.0 §3.8.1)');
  const previousLevel = riskLevel(payload.previous_level, 'previous_level', base.eventType);
  const { principal } = payload;
  if (principal !== undefined && typeof principal !== 'string') throw malformed(base.eventType, '"principal" must be a string (CAEP 1.0 §3.8.1)');
  const subject = subjectOf(set, base.eventType, payload);
  if ('reason' in subject) return { ...base, kind: 'unresolvable', reason: subject.reason };
  const who = principal?.toUpperCase();
  let ref: SubjectRef = subject;
  if (who === 'USER') {
    if (subject.sub === undefined && subject.email === undefined) return { ...base, kind: 'unresolvable', reason: 'the principal is USER but the subject names no user' };
    ref = { issuer: subject.issuer, ...userOf(subject) };
  } else if (who === 'SESSION') {
    if (subject.sid === undefined) return { ...base, kind: 'unresolvable', reason: 'the principal is SESSION but the subject names no session' };
  } else if (who !== undefined) {
    return { ...base, kind: 'unresolvable', reason: `the risk level is that of a ${quote(principal as string, 32)}, not of a user or a session` };
  }
  return { ...base, kind: 'risk-level', scale: 'risk', level, ...(previousLevel !== undefined ? { previousLevel } : {}), ...ref };
}

function riskLevel(value: unknown, member: string, eventType: string): RiskLevel | undefined {
  if (value === undefined) return undefined;
  const level = typeof value === 'string' ? value.toUpperCase() : undefined;
  if (level === undefined || !(RISK_LEVELS as readonly string[]).includes(level)) {
    throw malformed(eventType, `"${member}" must be one of ${RISK_LEVELS.join(', ')} (CAEP 1.0 §3.8.1)`);
  }
  return level as RiskLevel;
}

/** CAEP 1.0 §3.4: `namespace`, `current_level` (required), `previous_level`. */
function assuranceLevelChange(set: VerifiedSet, base: IntentBase, payload: EventPayload): Intent {
  const { namespace, current_level: level, previous_level: previous } = payload;
  if (!nonEmpty(namespace)) throw malformed(base.eventType, '"namespace" is required: a non-empty string (CAEP 1.0 §3.4.1)');
  if (!nonEmpty(level)) throw malformed(base.eventType, '"current_level" is required: a non-empty string (CAEP 1.0 §3.4.1)');
  if (previous !== undefined && !nonEmpty(previous)) throw malformed(base.eventType, '"previous_level" must be a non-empty string (CAEP 1.0 §3.4.1)');
  checkIdentifiers(base.eventType, 'the event', { namespace, current_level: level, ...(previous !== undefined && { previous_level: previous }) });
  const subject = subjectOf(set, base.eventType, payload);
  if ('reason' in subject) return { ...base, kind: 'unresolvable', reason: subject.reason };
  return { ...base, kind: 'risk-level', scale: 'assurance', namespace, level, ...(previous !== undefined ? { previousLevel: previous } : {}), ...subject };
}

// ---------------------------------------------------------------------------------------
// Subjects (RFC 9493, OpenID SSF §3).
// ---------------------------------------------------------------------------------------

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const nonEmpty = (v: unknown): v is string => typeof v === 'string' && v !== '';

/**
 * Values Writ finds users and sessions by, or records (levels), hold no control character:
 * the database cannot store NUL, and an identifier with a control character names no one.
 */
function checkIdentifiers(eventType: string, where: string, members: Readonly<Record<string, string>>): void {
  for (const [name, value] of Object.entries(members)) {
    const problem = textProblem(value, 'identifier');
    if (problem) throw malformed(eventType, `"${name}" in ${where} ${problem}`);
  }
}

const malformed = (eventType: string, what: string): SetError =>
  new SetError('invalid_request', `the payload of event ${quote(eventType, 128)} does not conform to its definition: ${what} (RFC 8935 §2.4)`);

/** A user named by a subject identifier. */
type User = { readonly issuer: string } & UserRef;

/** What one identifier resolved to; `refused` makes the whole subject unresolvable. */
interface Resolution {
  user?: User;
  sid?: string;
  refused?: string;
  unsupported: string[];
}

/** The event's subject as a {@link SubjectRef}, or why it names nobody Writ can find. Throws for a malformed one. */
function subjectOf(set: VerifiedSet, eventType: string, payload: EventPayload): SubjectRef | { reason: string } {
  const [identifier, where] = payload.subject !== undefined ? [payload.subject, 'the event\'s "subject"'] : [set.subId, '"sub_id"'];
  if (identifier === undefined) return { reason: 'the event names no subject (neither its "subject" member nor the SET\'s "sub_id")' };
  const r = resolve(identifier, where, set, eventType, 'top');
  if (r.refused !== undefined) return { reason: r.refused };
  if (r.user) return { ...r.user, ...(r.sid !== undefined ? { sid: r.sid } : {}) };
  if (r.sid !== undefined) return { issuer: set.iss, sid: r.sid };
  const why = r.unsupported.length > 0 ? r.unsupported.join('; ') : 'it names no user or session';
  return { reason: `the subject cannot be resolved: ${why}` };
}

type Level = 'top' | 'complex' | 'alias';

/** The format of a subject identifier: `format` (RFC 9493 §3), the RISC draft's `subject_type`, or a format-less complex subject. */
function formatOf(id: Record<string, unknown>): string | undefined {
  if (typeof id.format === 'string') return id.format;
  if (typeof id.subject_type === 'string') return id.subject_type.replace(/-/g, '_');
  if (id.format === undefined && (isRecord(id.user) || isRecord(id.session))) return 'complex';
  return undefined;
}

function resolve(id: unknown, where: string, set: VerifiedSet, eventType: string, level: Level): Resolution {
  if (!isRecord(id)) throw malformed(eventType, `${where} must be a subject identifier object (RFC 9493 §3)`);
  const format = formatOf(id);
  if (format === undefined) throw malformed(eventType, `${where} has no "format" (RFC 9493 §3)`);
  switch (format) {
    case 'iss_sub': {
      const { iss, sub } = id;
      if (!nonEmpty(iss) || !nonEmpty(sub)) throw malformed(eventType, `${where} in format iss_sub needs "iss" and "sub" strings (RFC 9493 §3.2.3)`);
      checkIdentifiers(eventType, where, { iss, sub });
      if (!set.subjectIssuers.includes(iss)) {
        return { refused: `the subject is a user of ${quote(iss, 128)}, which transmitter ${set.iss} may not speak for (subject_issuers)`, unsupported: [] };
      }
      return { user: { issuer: iss, sub }, unsupported: [] };
    }
    case 'email': {
      if (!nonEmpty(id.email)) throw malformed(eventType, `${where} in format email needs an "email" string (RFC 9493 §3.2.2)`);
      checkIdentifiers(eventType, where, { email: id.email });
      return { user: { issuer: set.iss, email: id.email }, unsupported: [] };
    }
    case 'opaque': {
      if (!nonEmpty(id.id)) throw malformed(eventType, `${where} in format opaque needs an "id" string (RFC 9493 §3.2.4)`);
      checkIdentifiers(eventType, where, { id: id.id });
      // An opaque identifier is a session ID where it names the subject or its session; as an alias it names nothing Writ knows.
      return level === 'alias' ? { unsupported: ['an opaque alias names no user'] } : { sid: id.id, unsupported: [] };
    }
    case 'complex':
      if (level !== 'top') throw malformed(eventType, `${where} nests a complex subject (OpenID SSF §3.3)`);
      return resolveComplex(id, where, set, eventType);
    case 'aliases':
      if (level !== 'top') throw malformed(eventType, `${where} nests aliases (RFC 9493 §3.2.8)`);
      return resolveAliases(id, where, set, eventType);
    default:
      return { unsupported: [`subject format ${quote(format, 32)} names no user Writ can find (supported: iss_sub, email, opaque, complex, aliases)`] };
  }
}

/** OpenID SSF §3.3: `user` names the user, `session` (opaque) the session; other members are not read. */
function resolveComplex(id: Record<string, unknown>, where: string, set: VerifiedSet, eventType: string): Resolution {
  const out: Resolution = { unsupported: [] };
  if (id.user !== undefined) {
    const user = resolve(id.user, `${where}.user`, set, eventType, 'complex');
    if (user.refused !== undefined) return user;
    if (user.user) out.user = user.user;
    else if (user.sid !== undefined) out.unsupported.push('the complex subject\'s "user" is an opaque identifier, which names no user');
    else out.unsupported.push(...user.unsupported);
  }
  if (id.session !== undefined) {
    const session = resolve(id.session, `${where}.session`, set, eventType, 'complex');
    if (session.refused !== undefined) return session;
    if (session.sid !== undefined) out.sid = session.sid;
    else out.unsupported.push('the complex subject\'s "session" is not an opaque session ID');
  }
  if (id.user === undefined && id.session === undefined) {
    const members = Object.keys(id).filter((k) => k !== 'format');
    out.unsupported.push(`the complex subject names no user or session (members: ${members.map((m) => quote(m, 32)).join(', ') || 'none'})`);
  }
  return out;
}

/** RFC 9493 §3.2.8: the first `iss_sub` identifier, else the first `email`. */
function resolveAliases(id: Record<string, unknown>, where: string, set: VerifiedSet, eventType: string): Resolution {
  const { identifiers } = id;
  if (!Array.isArray(identifiers) || identifiers.length === 0) throw malformed(eventType, `${where} in format aliases needs a non-empty "identifiers" array (RFC 9493 §3.2.8)`);
  const resolved = identifiers.map((alias, i) => resolve(alias, `${where}.identifiers[${i}]`, set, eventType, 'alias'));
  const refused = resolved.find((r) => r.refused !== undefined);
  if (refused) return refused;
  const users = resolved.flatMap((r) => (r.user ? [r.user] : []));
  const user = users.find((u) => u.sub !== undefined) ?? users[0];
  if (user) return { user, unsupported: [] };
  return { unsupported: ['no alias is an iss_sub or email identifier'] };
}
