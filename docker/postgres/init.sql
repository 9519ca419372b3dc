-- docker-compose.yml: one database per service (docs/CONFIGURATION.md "Scaling out"). Run once,
-- by the postgres image, when its data volume is empty. Each service creates and migrates its own
-- schema at start (under an advisory lock, so replicas may start together).
CREATE DATABASE orders;
CREATE DATABASE inventory;
CREATE DATABASE notification;
CREATE DATABASE analytics;
