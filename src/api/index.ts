export { createApiApp, BODY_LIMIT, type ApiDeps } from './app';
export { createOpsServer, type OpsDeps } from './ops';
export { HttpMetrics } from './metrics';
export { sendProblem, errorHandler, type Problem } from './problem';
export type { BundleSource } from './bundle';
export { bundleRouter } from './bundle';
export { adminRouter, entryView, type AdminDeps } from './admin';
export { svidRouter, type SvidRouteDeps } from './svid';
export { requireAdmin, requireSvid, Unauthenticated, Forbidden } from './auth';
