//! update-distribution-regions under generated histories: drift repairs, document uploads, hand requests, console
//! edits and faults. Its promises: no member of a distribution is ever lost or changed but the regions asked, and once
//! everything is handled every listed configuration that can be planned holds exactly the newest document's regions.

use std::collections::BTreeSet;

use proptest::prelude::*;
use serde_json::{Value, json};
use shared::report::Outcome;
use update_distribution_regions::UpdateDistributionRegions;

use super::history::{Delivered, Model, World};

pub(crate) const WEB: &str = "arn:aws:imagebuilder:us-east-1:123456789012:distribution-configuration/web-golden";
pub(crate) const API: &str = "arn:aws:imagebuilder:us-east-1:123456789012:distribution-configuration/api-golden";
const BUCKET: &str = "keeper-desired-state-123456789012-us-east-1";
const KEY: &str = "regions.json";
const REGIONS: [&str; 5] = ["us-east-1", "eu-west-1", "ap-south-1", "eu-central-1", "eu-west-2"];

#[derive(Debug, Clone)]
pub(crate) enum Event {
    /// The schedule's drift repair.
    DriftRepair,
    /// A new version of the document: web-golden's and api-golden's regions as bit masks over [`REGIONS`]
    /// (us-east-1 always).
    Upload { web: u8, api: u8 },
    /// By hand, without a requestId: add or remove one region of web-golden.
    Hand { add: bool, region: usize },
}

#[derive(Debug, Clone)]
/// What someone does in the console.
pub(crate) enum Writer {
    /// Someone adds sa-east-1 to web-golden in the console.
    AddsRegion,
    /// Someone changes web-golden's description.
    EditsDescription(u8),
    /// Someone removes api-golden's template region (us-east-1) in the console.
    RemovesApiTemplate,
}

/// A distribution with region-bound and shared members, as the console writes one.
fn distribution(region: &str) -> Value {
    json!({"region": region, "amiDistributionConfiguration": {"name": "web-{{ imagebuilder:buildDate }}",
        "amiTags": {"team": "web", "region": region},
        "kmsKeyId": format!("arn:aws:kms:{region}:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab")},
        "licenseConfigurationArns": [format!("arn:aws:license-manager:{region}:123456789012:license-configuration:lic-0123456789abcdef0123456789abcdef")]})
}

/// What keeper adds for `region`: the template's (us-east-1's) distribution, region-bound members dropped.
fn copy_of_template(region: &str) -> Value {
    let mut copy = distribution("us-east-1");
    copy["region"] = json!(region);
    copy["amiDistributionConfiguration"].as_object_mut().map(|o| o.remove("kmsKeyId"));
    copy.as_object_mut().map(|o| o.remove("licenseConfigurationArns"));
    copy
}

fn document(web: &[&str], api: &[&str]) -> String {
    json!({"distributionConfigurations": [
        {"arn": WEB, "regions": web},
        {"arn": API, "regions": api, "templateRegion": "us-east-1"}
    ]})
    .to_string()
}

fn config<'a>(dump: &'a Value, arn: &str) -> &'a Value {
    &dump["regions"]["us-east-1"]["distributionConfigurations"][arn]
}

fn regions_of(dump: &Value, arn: &str) -> Vec<String> {
    config(dump, arn)["distributions"]
        .as_array()
        .map(|d| d.iter().filter_map(|x| x["region"].as_str().map(String::from)).collect())
        .unwrap_or_default()
}

fn pick(mask: u8) -> Vec<&'static str> {
    let chosen = (1..REGIONS.len()).filter(|i| mask & (1 << i) != 0).map(|i| REGIONS[i]);
    std::iter::once("us-east-1").chain(chosen).collect()
}

/// The current version of the document.
fn newest_document(dump: &Value) -> Value {
    let object = &dump["s3"][BUCKET][KEY];
    serde_json::from_str(object["body"].as_str().unwrap_or_else(|| object.as_str().unwrap_or("{}"))).unwrap_or_default()
}

/// The regions a document's entry lists.
fn regions_in(entry: &Value) -> BTreeSet<String> {
    entry["regions"].as_array().into_iter().flatten().filter_map(|r| r.as_str().map(String::from)).collect()
}

pub(crate) struct Regions;

impl Model for Regions {
    type F = UpdateDistributionRegions;
    type Event = Event;
    type Writer = Writer;

    fn seed(&self) -> Value {
        json!({
            "regions": {"us-east-1": {"distributionConfigurations": {
                WEB: {"name": "web-golden", "description": "Golden web AMI",
                      "distributions": [distribution("us-east-1"), distribution("eu-west-1"), distribution("ap-south-1")]},
                API: {"name": "api-golden", "description": "Golden API AMI",
                      "distributions": [distribution("us-east-1"), distribution("eu-central-1")]}
            }}},
            "s3": {BUCKET: {KEY: document(&["us-east-1", "eu-west-1"], &["us-east-1", "eu-central-1"])}}
        })
    }

    fn settings(&self) -> Vec<(&'static str, String)> {
        vec![
            ("DESIRED_STATE_S3_URI", format!("s3://{BUCKET}/{KEY}")),
            ("DISTRIBUTION_CONFIGURATION_ARNS", format!("{WEB},{API}")),
        ]
    }

    fn events(&self) -> BoxedStrategy<Event> {
        prop_oneof![
            2 => Just(Event::DriftRepair),
            2 => (0u8..32, 0u8..32).prop_map(|(web, api)| Event::Upload { web, api }),
            2 => (any::<bool>(), 1..REGIONS.len()).prop_map(|(add, region)| Event::Hand { add, region }),
        ]
        .boxed()
    }

    fn writers(&self) -> BoxedStrategy<Writer> {
        prop_oneof![
            Just(Writer::AddsRegion),
            any::<u8>().prop_map(Writer::EditsDescription),
            Just(Writer::RemovesApiTemplate),
        ]
        .boxed()
    }

    fn operations(&self) -> &'static [(&'static str, &'static str, &'static str, &'static str)] {
        &[
            (
                "GetDistributionConfiguration",
                "CallRateLimitExceededException",
                "ServiceException",
                "AccessDeniedException",
            ),
            (
                "UpdateDistributionConfiguration",
                "CallRateLimitExceededException",
                "ServiceException",
                "AccessDeniedException",
            ),
        ]
    }

    fn holds(&self) -> Vec<&'static str> {
        vec!["GetObject", "GetDistributionConfiguration", "UpdateDistributionConfiguration"]
    }

    fn payload(&self, event: &Event, n: usize, world: &World) -> Value {
        match event {
            Event::DriftRepair => json!({"version": "0", "id": format!("drift-{n}"), "detail-type": "Scheduled Event",
                "source": "aws.events", "account": "123456789012", "time": "2026-12-02T03:00:00Z", "region": "us-east-1",
                "resources": [], "detail": {}}),
            Event::Upload { web, api } => {
                let body = document(&pick(*web), &pick(*api));
                let version = world.running.emulator.objects().put(BUCKET, KEY, body.into(), None).1;
                json!({"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
                    "eventTime": "2026-12-02T10:20:00.000Z", "eventName": "ObjectCreated:Put", "userIdentity": {"principalId": "x"},
                    "requestParameters": {"sourceIPAddress": "x"}, "responseElements": {},
                    "s3": {"s3SchemaVersion": "1.0", "configurationId": "c",
                        "bucket": {"name": BUCKET, "ownerIdentity": {"principalId": "x"}, "arn": format!("arn:aws:s3:::{BUCKET}")},
                        "object": {"key": KEY, "size": 10, "versionId": version, "eTag": "e", "sequencer": format!("{n:04}")}}}]})
            }
            Event::Hand { add: true, region } => {
                json!({"distributionConfigurationArn": WEB, "addRegions": [REGIONS[*region]]})
            }
            Event::Hand { add: false, region } => {
                json!({"distributionConfigurationArn": WEB, "removeRegions": [REGIONS[*region]]})
            }
        }
    }

    fn write(&self, writer: &Writer, world: &World) {
        let mut w = world.running.emulator.world();
        let configs = &mut w.region("us-east-1").imagebuilder.distribution_configurations;
        match writer {
            Writer::AddsRegion => {
                let web = configs.get_mut(WEB).expect("seeded");
                let list = web["distributions"].as_array_mut().expect("a list");
                if !list.iter().any(|d| d["region"] == "sa-east-1") {
                    list.push(json!({"region": "sa-east-1"}));
                }
            }
            Writer::EditsDescription(n) => {
                configs.get_mut(WEB).expect("seeded")["description"] = json!(format!("edited in the console ({n})"));
            }
            Writer::RemovesApiTemplate => {
                let api = configs.get_mut(API).expect("seeded");
                let list = api["distributions"].as_array_mut().expect("a list");
                if list.len() > 1 {
                    list.retain(|d| d["region"] != "us-east-1");
                }
            }
        }
    }

    fn always(&self, world: &World, log: &[Delivered]) -> Result<(), String> {
        let dump = world.dump();
        let seed = self.seed();
        // No member is ever lost or changed: a distribution is either as seeded (or as the console wrote it), or, when
        // keeper added its region back, the template's copy with the region replaced and region-bound members dropped.
        for arn in [WEB, API] {
            let now = config(&dump, arn)["distributions"].as_array().cloned().unwrap_or_default();
            if now.is_empty() {
                return Err(format!("{arn} was left without a distribution"));
            }
            for found in &now {
                let region = found["region"].as_str().unwrap_or_default();
                let seeded = config(&seed, arn)["distributions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|d| d["region"] == region);
                let console = (region == "sa-east-1").then(|| json!({"region": "sa-east-1"}));
                if seeded == Some(found) || console.as_ref() == Some(found) || *found == copy_of_template(region) {
                    continue;
                }
                return Err(format!(
                    "{arn}: the {region} distribution is {found}, neither as written nor a clean copy"
                ));
            }
            // A region keeper added never carries another region's region-bound members.
            for d in &now {
                let region = d["region"].as_str().unwrap_or_default();
                if let Some(kms) = d["amiDistributionConfiguration"]["kmsKeyId"].as_str()
                    && !kms.contains(&format!(":{region}:"))
                {
                    return Err(format!("{arn}: {region} carries {kms}"));
                }
            }
        }
        // A delivery that applied the document (a drift repair, an upload's event) leaves each configuration it changed
        // with the newest document's regions, whoever else ran meanwhile: a stale document never wins. (Unless a
        // delivery of the same step failed, or was a hand request, whose change is not the document's.)
        if let Some(last) = log.last().filter(|_| world.fresh())
            && let Some(report) = last.report().filter(|r| !r.replayed)
            && last.payload.get("distributionConfigurationArn").is_none()
        {
            let same_step = log.iter().rev().skip(1).take_while(|d| d.step == last.step);
            let mut disturbed = false;
            for d in same_step {
                let failed = d.report().is_none_or(|r| r.count(Outcome::Failed) > 0);
                disturbed |= failed || d.payload.get("distributionConfigurationArn").is_some();
            }
            let newest = newest_document(&dump);
            for entry in newest["distributionConfigurations"].as_array().into_iter().flatten() {
                let arn = entry["arn"].as_str().unwrap_or_default();
                let applied = report.actions.iter().any(|a| a.outcome == Outcome::Applied && a.target.starts_with(arn));
                let wanted = regions_in(entry);
                let have: BTreeSet<String> = regions_of(&dump, arn).into_iter().collect();
                if applied && !disturbed && have != wanted {
                    return Err(format!(
                        "{arn} holds {have:?} right after a delivery applied the document, and the newest document says {wanted:?}: {:?}",
                        report.actions
                    ));
                }
            }
        }
        // An applied line of the delivery that just ran is true of the account right after it.
        // (A replay answers with the first run's report, "replayed": true: it says what was done then.)
        if let Some(last) = log.last().filter(|_| world.fresh())
            && let Some(report) = last.report().filter(|r| !r.replayed)
        {
            let web = regions_of(&dump, WEB);
            for a in report.actions.iter().filter(|a| a.outcome == Outcome::Applied && a.target.starts_with(WEB)) {
                let region = a.target.rsplit('#').next().unwrap_or_default().to_string();
                let there = web.contains(&region);
                if (a.action == "add-region" && !there) || (a.action == "remove-region" && there) {
                    return Err(format!("reported {} {region} applied, and web-golden has {web:?}", a.action));
                }
            }
        }
        Ok(())
    }

    fn settle(&self) -> Option<Event> {
        Some(Event::DriftRepair)
    }

    fn quiescent(&self, world: &World, log: &[Delivered]) -> Result<(), String> {
        let dump = world.dump();
        let newest = newest_document(&dump);
        let settled = log.last().and_then(Delivered::report);
        for entry in newest["distributionConfigurations"].as_array().into_iter().flatten() {
            let arn = entry["arn"].as_str().unwrap_or_default();
            let now = regions_of(&dump, arn);
            // A template region someone removed makes that configuration unplannable: its failure is its own.
            if let Some(template) = entry["templateRegion"].as_str()
                && !now.iter().any(|r| r == template)
            {
                continue;
            }
            let wanted = regions_in(entry);
            let have: BTreeSet<String> = now.into_iter().collect();
            if have != wanted {
                return Err(format!(
                    "{arn} holds {have:?} after the final drift repair, the newest document says {wanted:?}; repair: {settled:?}"
                ));
            }
        }
        Ok(())
    }
}
