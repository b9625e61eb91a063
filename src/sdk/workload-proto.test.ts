import { join } from 'node:path';
import * as protoLoader from '@grpc/proto-loader';
import { WORKLOAD_PROTO_JSON } from './workload-proto';

const OPTIONS = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true } as const;

describe('the SDK\'s copy of the Workload API definition', () => {
  it('is what proto/spiffe/workload/workload.proto defines: every service method and message type', () => {
    const fromFile = protoLoader.loadSync(join(__dirname, '../../proto/spiffe/workload/workload.proto'), OPTIONS);
    const embedded = protoLoader.fromJSON(WORKLOAD_PROTO_JSON as unknown as Parameters<typeof protoLoader.fromJSON>[0], OPTIONS);
    expect(Object.keys(embedded).sort()).toEqual(Object.keys(fromFile).sort());
    const methods = (d: protoLoader.PackageDefinition) =>
      Object.entries(d.SpiffeWorkloadAPI as protoLoader.ServiceDefinition).map(([name, m]) => [name, m.path, m.requestStream, m.responseStream, m.requestType.type, m.responseType.type]);
    expect(methods(embedded)).toEqual(methods(fromFile));
    for (const name of Object.keys(fromFile)) {
      if (name === 'SpiffeWorkloadAPI') continue;
      expect([name, (embedded[name] as protoLoader.MessageTypeDefinition<unknown, unknown>).type]).toEqual([name, (fromFile[name] as protoLoader.MessageTypeDefinition<unknown, unknown>).type]);
    }
  });
});
