-- Where a send job's fan-out stands: the id of the last contact of the last page it finished,
-- written under the job's lease. A node taking the job over (after a crash or a hand-back)
-- continues after it instead of walking the pages already sent again (docs/scheduling.md).
alter table jobs add column resume_after text;
