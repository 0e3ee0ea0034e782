import { describe, expect, it } from 'vitest';
import { parseLag } from './prom';

describe('parseLag', () => {
  it('adds the partitions of each group and topic, and reads the dirty days', () => {
    const text = [
      '# HELP uvr_kafka_consumer_lag_messages Messages not yet consumed.',
      '# TYPE uvr_kafka_consumer_lag_messages gauge',
      'uvr_kafka_consumer_lag_messages{group="uvr-projector",partition="0",topic="uvr.events.v1"} 15',
      'uvr_kafka_consumer_lag_messages{group="uvr-projector",partition="1",topic="uvr.events.v1"} 5',
      'uvr_kafka_consumer_lag_messages{group="uvr-sync",partition="0",topic="uvr.sync-requests.v1"} 0',
      'uvr_aggregates_dirty_days_pending 3',
      'uvr_http_requests_total{route="/api/x"} 9',
    ].join('\n');
    expect(parseLag(text)).toEqual({
      groups: [
        { group: 'uvr-projector', topic: 'uvr.events.v1', lag: 20 },
        { group: 'uvr-sync', topic: 'uvr.sync-requests.v1', lag: 0 },
      ],
      dirtyDays: 3,
    });
  });
  it('is empty without the metrics', () => {
    expect(parseLag('')).toEqual({ groups: [], dirtyDays: null });
  });
});
