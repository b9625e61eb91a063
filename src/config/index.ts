export { loadConfig, redactDatabaseUrl, CONFIG_FILE_KEYS, type Config } from './load';
export { ConfigError } from './errors';
