// The projector's lag, read from the server's /metrics (Prometheus text
// format; public like /health): uvr_kafka_consumer_lag_messages per consumer
// group and topic (added over partitions), and the days waiting for their
// daily aggregate (uvr_aggregates_dirty_days_pending).

export interface GroupLag {
  group: string;
  topic: string;
  lag: number;
}

export interface Lag {
  groups: GroupLag[];
  dirtyDays: number | null;
}

const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?\s+(\S+)/;

function labels(s: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of (s ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) out[m[1]] = m[2];
  return out;
}

export function parseLag(text: string): Lag {
  const groups = new Map<string, GroupLag>();
  let dirtyDays: number | null = null;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = sample.exec(line);
    if (!m) continue;
    if (m[1] === 'uvr_kafka_consumer_lag_messages') {
      const l = labels(m[2]);
      const key = `${l.group}\u0000${l.topic}`;
      const g = groups.get(key) ?? { group: l.group ?? '', topic: l.topic ?? '', lag: 0 };
      g.lag += Number(m[3]);
      groups.set(key, g);
    } else if (m[1] === 'uvr_aggregates_dirty_days_pending') {
      dirtyDays = (dirtyDays ?? 0) + Number(m[3]);
    }
  }
  return { groups: [...groups.values()].sort((a, b) => a.group.localeCompare(b.group) || a.topic.localeCompare(b.topic)), dirtyDays };
}
