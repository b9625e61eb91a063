// CPU time of the processes under test, from /proc/<pid>/stat (utime + stime, in clock ticks):
// far less noisy on a shared machine than throughput. A meter is read at the start and at the
// end of a measured window; a process that started inside the window counts from zero, one that
// ended inside it is lost (the broker's workers and PostgreSQL's pooled backends live throughout).
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

const TICK_MS = 1000 / Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim() || 100);

/** [ppid, utime + stime in ms] of a process, or undefined when it is gone. */
function stat(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    // After the command: state(0) ppid(1) … utime(11) stime(12) (proc(5), fields 3, 4, 14, 15).
    return [Number(fields[1]), (Number(fields[11]) + Number(fields[12])) * TICK_MS];
  } catch {
    return undefined;
  }
}

const allPids = () => readdirSync('/proc').filter((n) => /^\d+$/.test(n)).map(Number);

/** A process and all its descendants (a clustered broker is several processes). */
export function processTree(rootPid) {
  const parents = new Map();
  for (const pid of allPids()) {
    const s = stat(pid);
    if (s) parents.set(pid, s[0]);
  }
  const tree = [rootPid];
  for (let i = 0; i < tree.length; i++) for (const [pid, ppid] of parents) if (ppid === tree[i]) tree.push(pid);
  return tree;
}

/** Every PostgreSQL process on this machine (the server, its backends and its background workers). */
export function postgresPids() {
  return allPids().filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'postgres';
    } catch {
      return false;
    }
  });
}

/** CPU ms of each of `pids` now. */
function sample(pids) {
  const out = new Map();
  for (const pid of pids) {
    const s = stat(pid);
    if (s) out.set(pid, s[1]);
  }
  return out;
}

/**
 * Meters named groups of processes: `start()` then `stop()` gives the CPU ms each group used in
 * between. `groups` maps a name to a function listing the group's pids (asked at both ends).
 *
 * @param {Record<string, () => number[]>} groups
 */
export function cpuMeter(groups) {
  let first;
  return {
    start() {
      first = Object.fromEntries(Object.entries(groups).map(([name, pids]) => [name, sample(pids())]));
    },
    /** @returns {Record<string, number>} CPU ms per group since `start()`. */
    stop() {
      if (!first) throw new Error('cpuMeter: stop() before start()');
      const used = {};
      for (const [name, pids] of Object.entries(groups)) {
        let ms = 0;
        for (const [pid, now] of sample(pids())) ms += now - (first[name].get(pid) ?? 0);
        used[name] = Math.round(ms);
      }
      first = undefined;
      return used;
    },
  };
}

/** CPU ms per request, two decimals (undefined without requests). */
export function perRequest(usedMs, count) {
  if (!(count > 0)) return undefined;
  return Object.fromEntries(Object.entries(usedMs).map(([name, ms]) => [name, Math.round((ms / count) * 1000) / 1000]));
}
