export { loadConfig, redactDatabaseUrl, CONFIG_FILE_KEYS, CONFIG_ENV_NAMES, type Config } from './load';
export { ConfigError } from './errors';
