export { AdminCredentials, type TokenFileLocation } from './credentials';
export { ADMIN_ROLES, RoleBindings, RoleBindingError, adminRoleBindingsSchema, personPrincipal, roleBindingCreateRequest, roleBindingDeleteQuery, roleBindingRequest, roleCovers, type AdminRole, type AdminRoleBinding, type AdminRoleBindingConfig, type Person } from './roles';
export { bootstrapTokenLocation, tokenFileExists, removeTokenFile, BOOTSTRAP_TOKEN_FILE } from './token-file';
