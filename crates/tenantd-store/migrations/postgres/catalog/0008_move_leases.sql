-- Who runs an open move: the runner holding its lease and until when. A runner renews the
-- lease while it works; a node's job resumes an open move whose lease ran out (its runner
-- stopped), and the CLI's --resume and --abort take the lease first, so two runners never
-- carry one move at once (`docs/design/mobility.md`).
ALTER TABLE tenant_moves ADD COLUMN runner TEXT;
ALTER TABLE tenant_moves ADD COLUMN lease_until TEXT;
