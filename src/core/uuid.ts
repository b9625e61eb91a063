/** The textual form of a UUID (RFC 9562 §4), any version, either case: the shape every Writ identifier has. */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Whether `value` is a UUID; identifiers that are not name nothing, and are answered without a query. */
export const isUuid = (value: string): boolean => UUID.test(value);
