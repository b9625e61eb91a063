// @peculiar/x509 resolves its services through tsyringe, which needs the Reflect polyfill
// loaded first; and it signs with Node's WebCrypto. Every CA module imports x509 from here.
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export { x509 };
export const subtle = webcrypto.subtle;
