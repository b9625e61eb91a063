export {
  CLASSIFICATIONS,
  TOOL_ACTIONS,
  DELEGATE_ACTION,
  USE_GRANT_ACTION,
  ENTITY_TYPES,
  WRIT_SCHEMA,
  classificationLevel,
  isClassification,
  isToolAction,
  toolEntityId,
  type Classification,
  type ToolAction,
} from './schema';
export {
  PolicyEngine,
  validatePolicies,
  type ActionRequest,
  type DelegateRequest,
  type UseGrantRequest,
  type PolicyConnector,
  type PolicyDecision,
  type PolicyRequest,
  type ApprovalRequirement,
  type PolicyTaskHistory,
  type PolicyTool,
  type PolicyUser,
  type PolicyValidation,
} from './engine';
export { PolicyInvalid, PolicyVersionNotFound } from './errors';
export { PolicyStore, type PolicyVersion, type PolicyVersionSummary } from './store';
export { seedPolicies, withPolicyFile } from './seed';
