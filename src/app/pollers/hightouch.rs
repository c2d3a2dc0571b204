//! Hightouch API calls for the poller: `GET /api/v1/syncs` (every sync of
//! the workspace) and `GET /api/v1/syncs/{id}/runs`, both paged with
//! `limit` / `offset` (and `hasMore` where the API gives it). Runs are asked
//! for `after` the cursor's bound; the mapping is the pure adapter's
//! ([`crate::ingest::adapters::hightouch`]).

use serde::Deserialize;
use serde_json::Value;

use super::census::vendor_id;
use super::cursor::run_time;
use super::http::{VendorClient, VendorError};
use crate::ingest::adapters::{AdapterError, hightouch};
use crate::ingest::sources::HightouchSource;
use crate::model::{Run, Timestamp};

const LIMIT: usize = 100;
/// A bound on pages walked per listing, against a misbehaving API.
const MAX_PAGES: usize = 500;

pub struct HightouchApi {
    client: VendorClient,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Listing {
    #[serde(default)]
    data: Vec<Value>,
    #[serde(default)]
    has_more: Option<bool>,
}

impl Listing {
    fn more(&self) -> bool {
        self.has_more.unwrap_or(self.data.len() >= LIMIT) && !self.data.is_empty()
    }
}

impl HightouchApi {
    pub fn new(source: &HightouchSource) -> Result<Self, reqwest::Error> {
        Ok(HightouchApi {
            client: VendorClient::new("Hightouch", source.api_token.clone(), &source.api)?,
        })
    }

    async fn page(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<Listing, VendorError> {
        let body = self.client.get(segments, query, None).await?;
        serde_json::from_slice(&body).map_err(|e| VendorError::Payload {
            vendor: self.client.vendor(),
            path: format!("/{}", segments.join("/")),
            source: AdapterError::Json(e),
        })
    }

    /// The ids of every sync of the workspace.
    pub async fn list_syncs(&self) -> Result<Vec<String>, VendorError> {
        let mut ids = Vec::new();
        for page in 0..MAX_PAGES {
            let query = [
                ("limit", LIMIT.to_string()),
                ("offset", (page * LIMIT).to_string()),
            ];
            let listing = self.page(&["api", "v1", "syncs"], &query).await?;
            ids.extend(listing.data.iter().filter_map(|s| vendor_id(s.get("id"))));
            if !listing.more() {
                break;
            }
        }
        Ok(ids)
    }

    /// The runs of a sync that started at or after `from`. A run the
    /// adapter cannot map is logged and left out.
    pub async fn runs_since(
        &self,
        sync_id: &str,
        from: Timestamp,
    ) -> Result<Vec<Run>, VendorError> {
        let segments = ["api", "v1", "syncs", sync_id, "runs"];
        let mut runs = Vec::new();
        for page in 0..MAX_PAGES {
            let query = [
                ("limit", LIMIT.to_string()),
                ("offset", (page * LIMIT).to_string()),
                ("after", from.to_rfc3339()),
            ];
            let listing = self.page(&segments, &query).await?;
            let mut any_recent = false;
            for item in &listing.data {
                let one = serde_json::json!({ "data": [item] });
                match hightouch::runs_from_api(sync_id, one.to_string().as_bytes()) {
                    Ok(mapped) => {
                        for run in mapped {
                            any_recent |= run_time(&run).is_none_or(|t| t >= from);
                            runs.push(run);
                        }
                    }
                    Err(e) => {
                        any_recent = true;
                        tracing::warn!(sync = sync_id, error = %e, "Hightouch run skipped: cannot be mapped");
                    }
                }
            }
            // An API that ignores `after` and lists newest first ends here
            // too: a page with nothing recent means the rest is older.
            if !listing.more() || !any_recent {
                break;
            }
        }
        Ok(runs)
    }
}
