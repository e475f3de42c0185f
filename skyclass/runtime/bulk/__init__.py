"""Bulk jobs (docs/bulk.md): jobs of any size, over client uploads or an S3 prefix read in
place, counted in DynamoDB, finished with an export, an event and a signed callback.

``jobstore`` and ``ledger`` keep jobs and their images in one DynamoDB table;
``sources`` says what a job may read and what counts as an image; ``lister`` lists a
source prefix into the work queue in the background; ``tracker`` is the workers' side
(drop what a cancelled job no longer wants, count each answer once); ``finisher``
builds the export (``export``) and tells the world (``notify``); ``service`` is the
API's side; ``backlog`` is what the scaler learns from the jobs; ``tasks`` carries
listing and completion tasks between them.
"""
