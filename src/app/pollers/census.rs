//! Census API calls: the fetch behind the webhook (the webhook names a run
//! but carries no counts) and the listing the poller walks.
//!
//! Endpoints: `GET /api/v1/sync_runs/{id}`, `GET /api/v1/sync_runs/{id}/records?status=rejected`
//! (the record-error sample), `GET /api/v1/syncs` and
//! `GET /api/v1/syncs/{id}/sync_runs?order=desc`, all paged with
//! `page` / `per_page` and `pagination.next_page`. The mapping itself is the
//! pure adapter's ([`crate::ingest::adapters::census`]).

use serde::Deserialize;
use serde_json::Value;
use tokio::time::Instant;

use super::cursor::run_time;
use super::http::{VendorClient, VendorError};
use crate::ingest::adapters::{self, AdapterError, census};
use crate::ingest::sources::CensusSource;
use crate::model::{RecordError, Run, Timestamp};

/// Census caps `per_page` at 100.
const PER_PAGE: usize = 100;
/// A bound on pages walked per listing, against a misbehaving API.
const MAX_PAGES: u32 = 500;

pub struct CensusApi {
    client: VendorClient,
    sample: usize,
}

#[derive(Deserialize)]
struct Listing {
    #[serde(default)]
    data: Vec<Value>,
}

impl CensusApi {
    /// `None` when the source has no API token.
    pub fn new(source: &CensusSource) -> Result<Option<Self>, reqwest::Error> {
        let Some(token) = &source.api_token else {
            return Ok(None);
        };
        Ok(Some(CensusApi {
            client: VendorClient::new("Census", token.clone(), &source.api)?,
            sample: source.record_errors_sample,
        }))
    }

    /// The run `sync_run_id` with its counts and, when it rejected or
    /// skipped records, a sample of its record errors.
    pub async fn fetch_run(
        &self,
        sync_run_id: &str,
        deadline: Option<Instant>,
    ) -> Result<Run, VendorError> {
        let segments = ["api", "v1", "sync_runs", sync_run_id];
        let body = self.client.get(&segments, &[], deadline).await?;
        let run = census::run_from_api(&body).map_err(|e| self.payload(&segments, e))?;
        Ok(self.with_record_errors(run, deadline).await)
    }

    /// Attaches the record-error sample of a run with rejected or invalid
    /// records. If it cannot be fetched the run is kept without it: the
    /// counts are what alerts are about, and the failure is logged.
    pub async fn with_record_errors(&self, mut run: Run, deadline: Option<Instant>) -> Run {
        if self.sample == 0 || run.records.rejected() == 0 || !run.record_errors.is_empty() {
            return run;
        }
        match self.rejected_records(&run.run_id, deadline).await {
            Ok(errors) if errors.is_empty() => run,
            Ok(errors) => {
                run.record_errors = errors;
                match adapters::finish(run.clone()) {
                    Ok(run) => run,
                    Err(e) => {
                        tracing::warn!(run_id = %run.run_id, error = %e, "Census record errors dropped");
                        run.record_errors.clear();
                        run
                    }
                }
            }
            Err(e) => {
                tracing::warn!(sync_id = %run.sync_id, error = %e, "Census record errors not fetched; the run is kept with its counts");
                run
            }
        }
    }

    async fn rejected_records(
        &self,
        sync_run_id: &str,
        deadline: Option<Instant>,
    ) -> Result<Vec<RecordError>, VendorError> {
        let segments = ["api", "v1", "sync_runs", sync_run_id, "records"];
        let per_page = self.sample.min(PER_PAGE);
        let mut errors = Vec::new();
        let mut page = 1u64;
        while errors.len() < self.sample {
            let query = [
                ("status", "rejected".to_owned()),
                ("page", page.to_string()),
                ("per_page", per_page.to_string()),
            ];
            let body = self.client.get(&segments, &query, deadline).await?;
            let more = census::rejected_records(&body, self.sample - errors.len())
                .map_err(|e| self.payload(&segments, e))?;
            let next = census::next_page(&body).map_err(|e| self.payload(&segments, e))?;
            if more.is_empty() {
                break;
            }
            errors.extend(more);
            match next {
                Some(n) if n > page => page = n,
                _ => break,
            }
        }
        Ok(errors)
    }

    /// The ids of every sync of the workspace.
    pub async fn list_syncs(&self) -> Result<Vec<String>, VendorError> {
        let segments = ["api", "v1", "syncs"];
        let mut ids = Vec::new();
        let mut page = 1u64;
        for _ in 0..MAX_PAGES {
            let query = [
                ("page", page.to_string()),
                ("per_page", PER_PAGE.to_string()),
            ];
            let body = self.client.get(&segments, &query, None).await?;
            let listing: Listing = serde_json::from_slice(&body)
                .map_err(|e| self.payload(&segments, AdapterError::Json(e)))?;
            ids.extend(listing.data.iter().filter_map(|s| vendor_id(s.get("id"))));
            match census::next_page(&body).map_err(|e| self.payload(&segments, e))? {
                Some(n) if n > page && !listing.data.is_empty() => page = n,
                _ => break,
            }
        }
        Ok(ids)
    }

    /// The runs of a sync, newest first, down to the first page that
    /// reaches back before `from`. A run the adapter cannot map is logged
    /// and left out rather than failing the whole sync.
    pub async fn runs_since(
        &self,
        sync_id: &str,
        from: Timestamp,
    ) -> Result<Vec<Run>, VendorError> {
        let segments = ["api", "v1", "syncs", sync_id, "sync_runs"];
        let mut runs = Vec::new();
        let mut page = 1u64;
        for _ in 0..MAX_PAGES {
            let query = [
                ("page", page.to_string()),
                ("per_page", PER_PAGE.to_string()),
                ("order", "desc".to_owned()),
            ];
            let body = self.client.get(&segments, &query, None).await?;
            let listing: Listing = serde_json::from_slice(&body)
                .map_err(|e| self.payload(&segments, AdapterError::Json(e)))?;
            let mut reached_back = false;
            for item in &listing.data {
                match serde_json::to_vec(item)
                    .map_err(AdapterError::Json)
                    .and_then(|bytes| census::run_from_api(&bytes))
                {
                    Ok(run) => {
                        reached_back |= run_time(&run).is_some_and(|t| t < from);
                        runs.push(run);
                    }
                    Err(e) => {
                        tracing::warn!(sync = sync_id, error = %e, "Census run skipped: cannot be mapped");
                    }
                }
            }
            match census::next_page(&body).map_err(|e| self.payload(&segments, e))? {
                Some(n) if n > page && !reached_back && !listing.data.is_empty() => page = n,
                _ => break,
            }
        }
        Ok(runs)
    }

    fn payload(&self, segments: &[&str], source: AdapterError) -> VendorError {
        VendorError::Payload {
            vendor: self.client.vendor(),
            path: format!("/{}", segments.join("/")),
            source,
        }
    }
}

/// A vendor id given as a number or a string.
pub(super) fn vendor_id(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}
