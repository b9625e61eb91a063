/** The RFC 8693 token exchange grant type (§2.1). Pure constants: the SDK and the CLI use them too. */
export const TOKEN_EXCHANGE_GRANT_TYPE = 'urn:ietf:params:oauth:grant-type:token-exchange';

/** RFC 8693 §3 token type identifiers. */
export const TOKEN_TYPE = {
  ID_TOKEN: 'urn:ietf:params:oauth:token-type:id_token',
  JWT: 'urn:ietf:params:oauth:token-type:jwt',
  ACCESS_TOKEN: 'urn:ietf:params:oauth:token-type:access_token',
} as const;

/** The token types a client names, by their short names (the last part of the URN). */
export const TOKEN_TYPE_BY_NAME = { id_token: TOKEN_TYPE.ID_TOKEN, jwt: TOKEN_TYPE.JWT, access_token: TOKEN_TYPE.ACCESS_TOKEN } as const;
