export { AdminCredentials } from './credentials';
