import type { Command } from 'commander';
import { seconds } from '../args';
import { adminClient, globals } from '../context';
import { fields, print } from '../output';

interface Rotation {
  x509_authority: string;
  jwt_authority: string;
  activates_at: string;
  spiffe_sequence: number;
}

export function registerCa(program: Command): void {
  program
    .command('ca')
    .description('the broker\'s certificate authority')
    .command('rotate')
    .description('prepare a new CA and JWT key: published in the bundle now, signing after the overlap')
    .option('--overlap <duration>', 'how long the new authorities are published before they sign (default WRIT_CA_ROTATION_OVERLAP; at most 30d)', seconds)
    .action(async (o: { overlap?: number }, cmd: Command) => {
      const res = await adminClient(cmd).json<Rotation>('POST', '/v1/admin/ca/rotate', o.overlap === undefined ? {} : { overlap: o.overlap });
      print(globals(cmd).output, res, () =>
        fields([
          ['activates_at', res.activates_at],
          ['spiffe_sequence', res.spiffe_sequence],
          ['x509_authority', res.x509_authority],
          ['jwt_authority', res.jwt_authority],
        ]),
      );
    });
}
