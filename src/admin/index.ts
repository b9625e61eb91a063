export { AdminCredentials, type TokenFileLocation } from './credentials';
export { bootstrapTokenLocation, tokenFileExists, removeTokenFile, BOOTSTRAP_TOKEN_FILE } from './token-file';
