-- A ledger as the releases before the money columns made it (PostgreSQL): `metadata.create_all` of the tables in
-- video_pipeline/ledger.py and observed.py at 6a9fa51^ (no campaign_budgets, no estimated_usd … resolution),
-- captured as SQL, with rows. The previous main added the missing columns on open; migration 0001 does now.

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
	PRIMARY KEY (id),
	CONSTRAINT uq_provider_job UNIQUE (provider, provider_job_id)
);

CREATE INDEX ix_provider_jobs_campaign ON provider_jobs (campaign);

CREATE INDEX ix_provider_jobs_job_key ON provider_jobs (job_key);

CREATE INDEX ix_provider_jobs_model ON provider_jobs (model);

CREATE INDEX ix_provider_jobs_state ON provider_jobs (state);

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
INSERT INTO provider_jobs (job_key, campaign, video_id, segment_index, model, provider, provider_job_id, state, attempt, created_at, submitted_at, heartbeat_at, finished_at, latency_seconds, cost_usd, stored_uri, stored_sha256) VALUES ('k-stored', 'before-migrations', 'hero', 0, 'veo-3-1-fast', 'gemini', 'operations/op-1', 'stored', 1, '2026-11-30 10:00:00+00', '2026-11-30 10:00:01+00', '2026-11-30 10:01:00+00', '2026-11-30 10:00:43+00', 42.5, 0.8, 's3://clips/sha256/ab/ab01.mp4', 'ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01');
INSERT INTO job_events (provider, delivery_id, provider_job_id, state, payload, received_at) VALUES ('gemini', 'delivery-1', 'operations/op-1', 'succeeded', '{"done": true}', '2026-11-30 10:00:44+00');
INSERT INTO model_observations (model, provider, latency_seconds, succeeded, observed_at) VALUES ('veo-3-1-fast', 'gemini', 42.5, true, '2026-11-30 10:00:43+00');
