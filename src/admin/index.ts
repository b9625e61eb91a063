export { AdminCredentials } from './credentials';
export { CaRotationRequests, type CaRotationSource } from './ca-rotation';
