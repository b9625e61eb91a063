/** PEM (RFC 7468 §2): the DER's base64 in lines of 64 between BEGIN and END lines of `label`. */
export function toPem(der: Uint8Array, label: string): string {
  const body = Buffer.from(der).toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\n`;
}
