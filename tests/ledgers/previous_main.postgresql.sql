-- A ledger as the last release before migrations made it (PostgreSQL): `metadata.create_all` of main at cd8f441
-- (video_pipeline/jobs/ledger.py and planning/observed.py), captured as SQL, with rows of each kind.

CREATE TABLE provider_jobs (
	id SERIAL NOT NULL,
	job_key VARCHAR(64) NOT NULL,
	campaign VARCHAR(64) NOT NULL,
	video_id VARCHAR(64) NOT NULL,
	segment_index INTEGER NOT NULL,
	model VARCHAR(64) NOT NULL,
	provider VARCHAR(64) NOT NULL,
	provider_job_id VARCHAR(512),
	state VARCHAR(16) NOT NULL,
	attempt INTEGER NOT NULL,
	error_kind VARCHAR(16),
	last_error TEXT,
	created_at TIMESTAMP WITH TIME ZONE NOT NULL,
	submitted_at TIMESTAMP WITH TIME ZONE,
	heartbeat_at TIMESTAMP WITH TIME ZONE NOT NULL,
	finished_at TIMESTAMP WITH TIME ZONE,
	latency_seconds FLOAT,
	cost_usd FLOAT,
	output_url TEXT,
	url_expires_at TIMESTAMP WITH TIME ZONE,
	stored_uri TEXT,
	stored_sha256 VARCHAR(64),
	estimated_usd FLOAT,
	reserved_usd FLOAT,
	sent_at TIMESTAMP WITH TIME ZONE,
	uncertain_since TIMESTAMP WITH TIME ZONE,
	uncertain_until TIMESTAMP WITH TIME ZONE,
	fingerprint VARCHAR(64),
	resolution TEXT,
	PRIMARY KEY (id),
	CONSTRAINT uq_provider_job UNIQUE (provider, provider_job_id)
);

CREATE INDEX ix_provider_jobs_campaign ON provider_jobs (campaign);

CREATE INDEX ix_provider_jobs_job_key ON provider_jobs (job_key);

CREATE INDEX ix_provider_jobs_model ON provider_jobs (model);

CREATE INDEX ix_provider_jobs_state ON provider_jobs (state);

CREATE TABLE campaign_budgets (
	campaign VARCHAR(64) NOT NULL,
	budget_usd FLOAT,
	updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
	PRIMARY KEY (campaign)
);

CREATE TABLE job_events (
	id SERIAL NOT NULL,
	provider VARCHAR(64) NOT NULL,
	delivery_id VARCHAR(256) NOT NULL,
	provider_job_id VARCHAR(512) NOT NULL,
	state VARCHAR(16) NOT NULL,
	payload TEXT NOT NULL,
	received_at TIMESTAMP WITH TIME ZONE NOT NULL,
	PRIMARY KEY (id),
	CONSTRAINT uq_delivery UNIQUE (provider, delivery_id)
);

CREATE INDEX ix_job_events_provider_job_id ON job_events (provider_job_id);

CREATE TABLE model_observations (
	id SERIAL NOT NULL,
	model VARCHAR(64) NOT NULL,
	provider VARCHAR(64) NOT NULL,
	latency_seconds FLOAT,
	succeeded BOOLEAN NOT NULL,
	error_kind VARCHAR(16),
	observed_at TIMESTAMP WITH TIME ZONE NOT NULL,
	PRIMARY KEY (id)
);

CREATE INDEX ix_model_observations_model ON model_observations (model);

CREATE INDEX ix_model_observations_observed_at ON model_observations (observed_at);

-- rows
INSERT INTO provider_jobs (job_key, campaign, video_id, segment_index, model, provider, provider_job_id, state, attempt, created_at, submitted_at, heartbeat_at, finished_at, latency_seconds, cost_usd, stored_uri, stored_sha256, estimated_usd, reserved_usd, sent_at) VALUES ('k-stored', 'before-migrations', 'hero', 0, 'veo-3-1-fast', 'gemini', 'operations/op-1', 'stored', 1, '2026-11-30 10:00:00+00', '2026-11-30 10:00:01+00', '2026-11-30 10:01:00+00', '2026-11-30 10:00:43+00', 42.5, 0.8, 's3://clips/sha256/ab/ab01.mp4', 'ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01', 0.8, 0.8, '2026-11-30 10:00:00+00');
INSERT INTO provider_jobs (job_key, campaign, video_id, segment_index, model, provider, state, attempt, error_kind, last_error, created_at, heartbeat_at, estimated_usd, reserved_usd, sent_at, uncertain_since, uncertain_until, fingerprint) VALUES ('k-uncertain', 'before-migrations', 'hero', 1, 'kling-3-0', 'kling', 'uncertain', 1, 'uncertain', 'the answer was lost', '2026-11-30 10:02:00+00', '2026-11-30 10:02:30+00', 0.42, 0.42, '2026-11-30 10:02:01+00', '2026-11-30 10:02:01+00', '2026-11-30 10:03:00+00', '0000000000000000000000000000000000000000000000000000000000000000');
INSERT INTO campaign_budgets (campaign, budget_usd, updated_at) VALUES ('before-migrations', 5.0, '2026-11-30 10:00:00+00');
INSERT INTO job_events (provider, delivery_id, provider_job_id, state, payload, received_at) VALUES ('gemini', 'delivery-1', 'operations/op-1', 'succeeded', '{"done": true}', '2026-11-30 10:00:44+00');
INSERT INTO model_observations (model, provider, latency_seconds, succeeded, observed_at) VALUES ('veo-3-1-fast', 'gemini', 42.5, true, '2026-11-30 10:00:43+00');
