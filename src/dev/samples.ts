/**
 * The files `writ dev` writes into its directory on first start (and never overwrites, so
 * they can be edited there): the test users and a Cedar policy for them. They live in code so
 * that they ship in the broker's package with the rest of dist.
 */

/** alice is an engineer; bob an engineer and a maintainer; carol in no group. */
export const SAMPLE_USERS = `# Test users of writ dev's OpenID Provider (development only: no passwords).
# Their ID tokens carry "groups" (Writ's default groups_claim) and "sid".
users:
  alice:
    groups: [eng]
    email: alice@example.com
  bob:
    groups: [eng, maintainers]
    email: bob@example.com
  carol:
    groups: []
    email: carol@example.com
`;

/**
 * Engineers may read internal tools; maintainers may also write them; nobody may delete (default
 * deny). Engineers' tasks may post to writ dev's SaaS ("notes", notes:write only) through the
 * token vault, by any connector: a production policy names the connector too.
 */
export const SAMPLE_POLICY = `// writ dev's sample policy (Cedar, namespace Writ; default deny). Edit it and restart writ dev.
@id("eng-read-internal")
permit (principal, action == Writ::Action::"read", resource is Writ::Tool)
when { principal.groups.contains("eng") && context.classification_level <= 1 };

@id("maintainers-write-internal")
permit (principal, action == Writ::Action::"write", resource is Writ::Tool)
when { principal.groups.contains("maintainers") && context.classification_level <= 1 };

// The token vault: an engineer's task may have writ dev's SaaS's access token for notes:write.
@id("eng-notes-write")
permit (principal, action == Writ::Action::"use_grant", resource is Writ::Provider)
when { resource.name == "notes" && principal.groups.contains("eng") && ["notes:write"].containsAll(context.scopes) };
`;
