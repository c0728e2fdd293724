//! Managed signing keys: rotate-key-group as the Secrets Manager rotation function of a key group's secret. Each of
//! the four steps checks the secret first ([`check`]), then does its part once, finding the work of an earlier
//! attempt done or half done, because Secrets Manager calls a step again after a failure or a timeout.
//!
//! - createSecret: a new key pair, refused first when the group or the account has no room; its public key created
//!   in CloudFront (unlisted) and the pair stored as the pending version. The public key is created here, not in
//!   setSecret, because the version's value must name its `keyPairId` and a version's value cannot change once put.
//! - setSecret: the key joins the group with the ETag-safe read-modify-write of every rotation, marked as not signing
//!   yet, so the key it replaces keeps its grace period.
//! - testSecret: a canned-policy URL signed with the pending private key verifies with CloudFront's copy of the
//!   public key, and the key is in the group.
//! - finishSecret: AWSCURRENT moves to the version (AWSPREVIOUS follows to the old one); from this moment the key it
//!   replaced counts its grace period, recorded in the key's join mark, and a later rotation or the sweep retires it.

use std::time::{Duration, SystemTime};

use shared::error::InvalidInput;
use shared::hash::sha256_hex;
use shared::host::{Context, Permit, Withheld};
use shared::idempotency::client_token;
use shared::report::Verb as _;
use shared::report::{Action, Outcome, Report};
use shared::trigger::{Rotation, RotationStep};

use crate::config::{NewKey, Settings, comment, key_name};
use crate::error::Error;
use crate::keypair;
use crate::marks;
use crate::plan::{self, Refusal, Verb};
use crate::secrets::{self, CURRENT, GROUP_TAG, PENDING, STACK_TAG, Secret, SigningKey};
use crate::{NAME, RotateKeyGroup, now_secs};

/// Where the step stands, from the secret's staging labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    /// The version is AWSCURRENT already: the rotation is finished, and every step has nothing left to do.
    Finished,
    /// The version is AWSPENDING: the step does its part.
    Pending,
}

/// What every step checks before anything else, so that a refusal changes nothing: the secret is this deployment's
/// (`keeper:stack` is `KEEPER_STACK`), for a key group of `KEY_GROUP_IDS` (`keeper:key-group`), with rotation
/// turned on, and the token is a version of it staged AWSPENDING (or AWSCURRENT: finished). Returns the key group.
pub fn check(
    secret: &Secret,
    rotation: &Rotation,
    settings: &Settings,
    stack: &str,
) -> Result<(String, Stage), InvalidInput> {
    let name = &secret.name;
    match secret.tags.get(STACK_TAG) {
        Some(tagged) if tagged == stack => {}
        Some(tagged) => {
            return Err(InvalidInput::new(
                "SecretId",
                format!(
                    "secret {name} is tagged {STACK_TAG}={tagged}, not {stack}: this deployment rotates only its own secrets"
                ),
            ));
        }
        None => {
            return Err(InvalidInput::new(
                "SecretId",
                format!(
                    "secret {name} has no {STACK_TAG} tag: this deployment rotates only secrets tagged {STACK_TAG}={stack}"
                ),
            ));
        }
    }
    let group = secret.tags.get(GROUP_TAG).filter(|g| !g.is_empty()).ok_or_else(|| {
        InvalidInput::new(
            "SecretId",
            format!("secret {name} has no {GROUP_TAG} tag naming the key group its keys sign for"),
        )
    })?;
    settings
        .allows(group)
        .map_err(|e| InvalidInput::new("SecretId", format!("secret {name}'s {GROUP_TAG}: {}", e.rule)))?;
    if !secret.rotation_enabled {
        return Err(InvalidInput::new("SecretId", format!("secret {name} does not have rotation turned on")));
    }
    let token = &rotation.token;
    let Some(stages) = secret.stages_of(token) else {
        return Err(InvalidInput::new("ClientRequestToken", format!("`{token}` is not a version of secret {name}")));
    };
    if stages.iter().any(|s| s == CURRENT) {
        return Ok((group.clone(), Stage::Finished));
    }
    if !stages.iter().any(|s| s == PENDING) {
        return Err(InvalidInput::new(
            "ClientRequestToken",
            format!(
                "version {token} of secret {name} is not {PENDING} (its labels: {}): it is not the version a rotation makes",
                if stages.is_empty() { "none".to_string() } else { stages.join(", ") }
            ),
        ));
    }
    Ok((group.clone(), Stage::Pending))
}

/// The stem of the public key names a secret's rotations make: the secret's name, made valid.
fn key_stem(secret: &Secret) -> String {
    let stem: String = secret.name.chars().rev().take(60).collect::<String>().chars().rev().collect();
    format!("managed-{stem}")
}

fn rfc3339(time: SystemTime) -> String {
    time::OffsetDateTime::from(time).format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

impl RotateKeyGroup {
    /// One step of a rotation, holding the secret's lease: Secrets Manager's call of a step again after a timeout can
    /// overlap the first attempt, and two steps of one secret must never interleave. A dry run is refused: Secrets
    /// Manager would take a planned step for a done one and go on.
    pub(crate) async fn rotation_step(
        &self,
        rotation: Rotation,
        ctx: &Context,
        report: &mut Report,
    ) -> Result<(), Error> {
        let may = match ctx.may_mutate() {
            Ok(may) => may,
            Err(Withheld::DryRun) => {
                return Err(InvalidInput::new(
                    "DRY_RUN",
                    "a rotation step cannot only be planned: Secrets Manager would take it for done and go on; turn DRY_RUN off for the function that rotates secrets",
                )
                .into());
            }
            Err(Withheld::OutOfTime(e)) => return Err(e.into()),
        };
        let resource = format!("secret#{}", rotation.secret_id);
        ctx.under_lease(&resource, ctx.deadline_margin, async || self.step(&rotation, ctx, &may, report).await).await
    }

    async fn step(&self, r: &Rotation, ctx: &Context, may: &Permit, report: &mut Report) -> Result<(), Error> {
        let secret = secrets::describe(&self.secretsmanager, &r.secret_id).await?;
        let (group, stage) = check(&secret, r, &self.settings, &self.stack)?;
        let target = format!("{}/{}", secret.name, r.token);
        if stage == Stage::Finished {
            if r.step == RotationStep::FinishSecret {
                self.signs_from_now(ctx, &secret, &r.token, &group).await?;
            }
            let detail = format!("version {} is {CURRENT} already: this rotation is finished", r.token);
            report.push(Action::new(target, Verb::Step.as_str(), Outcome::Skipped, detail));
            return Ok(());
        }
        match r.step {
            RotationStep::CreateSecret => self.create_secret(r, &secret, &group, ctx, may, report).await,
            RotationStep::SetSecret => self.set_secret(r, &secret, &group, ctx, may, report).await,
            RotationStep::TestSecret => self.test_secret(r, &secret, &group, report).await,
            RotationStep::FinishSecret => self.finish_secret(r, &secret, &group, ctx, may, report).await,
        }
    }

    /// The pending version's signing key, which createSecret stored: refused when there is none or it is not one.
    async fn pending_key(&self, secret: &Secret, token: &str, group: &str) -> Result<SigningKey, Error> {
        let value = secrets::value(&self.secretsmanager, &secret.arn, token, PENDING).await?.ok_or_else(|| {
            InvalidInput::new(
                "ClientRequestToken",
                format!("version {token} of secret {} has no value: createSecret has not stored its key", secret.name),
            )
        })?;
        let key = SigningKey::parse(&value).map_err(|why| {
            InvalidInput::new("ClientRequestToken", format!("version {token} of secret {}: {why}", secret.name))
        })?;
        if key.key_group_id != group {
            return Err(InvalidInput::new(
                "ClientRequestToken",
                format!(
                    "version {token} holds a key for key group {}, but the secret is tagged {GROUP_TAG}={group}",
                    key.key_group_id
                ),
            )
            .into());
        }
        Ok(key)
    }

    /// The pending key's public key as CloudFront holds it, which must be the one the version stores.
    async fn stored_public_key(&self, secret: &Secret, key: &SigningKey) -> Result<String, Error> {
        let gone = format!(
            "public key {} of secret {}'s pending version is not in CloudFront (deleted by hand, or by the sweep after the rotation stalled): cancel the rotation (aws secretsmanager cancel-rotate-secret) and rotate again",
            key.key_pair_id, secret.name
        );
        let stored = crate::aws::encoded_key(&self.cloudfront, &key.key_pair_id)
            .await?
            .ok_or_else(|| InvalidInput::new("keyPairId", gone))?;
        if !crate::aws::same_pem(&stored, &key.public_key) {
            return Err(InvalidInput::new(
                "keyPairId",
                format!(
                    "public key {} in CloudFront is not the public half of secret {}'s pending key",
                    key.key_pair_id, secret.name
                ),
            )
            .into());
        }
        Ok(stored)
    }

    /// The pending key, its public key as CloudFront stores it, and proof that the group lists it: what testSecret
    /// tests and finishSecret checks again just before signers switch. AWSCURRENT never moves to a key not in it.
    async fn pending_in_group(&self, secret: &Secret, token: &str, group: &str) -> Result<(SigningKey, String), Error> {
        let key = self.pending_key(secret, token, group).await?;
        let stored = self.stored_public_key(secret, &key).await?;
        if !crate::aws::group(&self.cloudfront, group).await?.items.contains(&key.key_pair_id) {
            return Err(Error::KeyTest(format!(
                "{} is no longer in key group {group} (setSecret has not added it, or someone removed it since): AWSCURRENT stays where it is; rotate again",
                key.key_pair_id
            )));
        }
        Ok((key, stored))
    }

    /// createSecret: unless the version holds a key already, refuse a rotation that cannot fit (the group full within
    /// its grace, the account out of public keys) before making anything; then make a key pair, create its public key
    /// (CallerReference from the secret, the token and the key, so that a retry whose earlier key pair was lost with
    /// its process never meets that key's reference), and store the pair as the pending version.
    async fn create_secret(
        &self,
        r: &Rotation,
        secret: &Secret,
        group: &str,
        ctx: &Context,
        may: &Permit,
        report: &mut Report,
    ) -> Result<(), Error> {
        let target = format!("{}/{}", secret.name, r.token);
        if let Some(value) = secrets::value(&self.secretsmanager, &secret.arn, &r.token, PENDING).await? {
            let key = SigningKey::parse(&value).map_err(|why| {
                InvalidInput::new(
                    "ClientRequestToken",
                    format!("version {} of secret {} has a value already, {why}", r.token, secret.name),
                )
            })?;
            let detail = format!(
                "the version holds key {} already (stored by an earlier attempt of this step)",
                key.key_pair_id
            );
            report.push(Action::new(target, Verb::StoreKey.as_str(), Outcome::Skipped, detail));
            return Ok(());
        }
        let algorithm = self.settings.key_algorithm;
        let made = keypair::generate(algorithm).map_err(|e| Error::Internal(e.to_string()))?;
        let caller_reference =
            client_token(NAME, &[&secret.arn, &r.token, &sha256_hex(made.public_key_pem.as_bytes())]);
        let new_key = NewKey {
            name: key_name(&key_stem(secret), &caller_reference),
            comment: comment(&self.tag, &format!("managed by secret {} version {}", secret.name, r.token)),
            caller_reference,
            pem: made.public_key_pem.clone(),
            upload: None,
        };
        let mut job = crate::config::Job::sweep(group, &self.settings);
        job.new_key = Some(new_key.clone());
        let (read, keys) = self.observe(ctx, group, &[]).await?;
        plan::with_new_key(&job, &read.items, &keys, None, now_secs())?;
        let in_account = crate::aws::public_keys(&self.cloudfront).await?.len();
        if in_account >= self.settings.public_key_quota {
            return Err(Refusal::QuotaWouldBeExceeded(format!(
                "the account holds {in_account} public keys and PUBLIC_KEY_QUOTA is {}: a rotation needs one more; delete unused keys (DELETE_RETIRED_KEYS lets the sweep do it) or raise the quota and the setting",
                self.settings.public_key_quota
            ))
            .into());
        }
        let id = self.create_key(&job, &new_key, may, report).await?;
        let key = SigningKey {
            key_pair_id: id.clone(),
            private_key: made.private_key,
            public_key: made.public_key_pem,
            algorithm,
            key_group_id: group.to_string(),
            created_at: rfc3339(ctx.now),
        };
        let put = secrets::put_pending(
            &self.secretsmanager,
            &secret.arn,
            &r.token,
            &key.to_json()?,
            r.rotation_token.as_deref(),
            may,
        )
        .await?;
        match put {
            secrets::Put::Stored => {
                let detail = format!("{} key {id} stored as {PENDING}", algorithm.as_str());
                report.push(Action::new(target, Verb::StoreKey.as_str(), Outcome::Applied, detail));
            }
            secrets::Put::TakenByAnother => {
                // Another attempt of this step stored its own key first; that one is the version's, and this
                // attempt's public key belongs to no version: deleted, or left to the sweep.
                let detail = "another attempt of this step stored its key first; this attempt's key is not used";
                report.push(Action::new(target, Verb::StoreKey.as_str(), Outcome::Skipped, detail));
                report.push(self.abandon(&job, &id, may).await);
            }
        }
        Ok(())
    }

    /// setSecret: the pending key joins the group (ETag-safe, quota-checked, recognising its own earlier update
    /// whose answer was lost), marked as not signing yet.
    async fn set_secret(
        &self,
        r: &Rotation,
        secret: &Secret,
        group: &str,
        ctx: &Context,
        may: &Permit,
        report: &mut Report,
    ) -> Result<(), Error> {
        let key = self.pending_key(secret, &r.token, group).await?;
        self.stored_public_key(secret, &key).await?;
        let mut job = crate::config::Job::sweep(group, &self.settings);
        job.add = vec![key.key_pair_id.clone()];
        job.pending_signer = true;
        let mut reported = Vec::new();
        let rotated = self.rotate(&job, Some(may), ctx, report, &mut reported).await;
        for said in &reported {
            self.remember(ctx, said).await;
        }
        rotated
    }

    /// testSecret: a URL signed with the pending private key, in CloudFront's canned-policy format, verifies with
    /// the public key as CloudFront stores it; and the key is in the group. Read-only.
    async fn test_secret(&self, r: &Rotation, secret: &Secret, group: &str, report: &mut Report) -> Result<(), Error> {
        let (key, stored) = self.pending_in_group(secret, &r.token, group).await?;
        let url = format!("https://keeper.invalid/rotation-test/{}", key.key_pair_id);
        let expires = now_secs() as u64 + 300;
        let signed = keypair::sign_url(&url, expires, &key.key_pair_id, key.algorithm, &key.private_key)
            .map_err(|e| Error::KeyTest(e.to_string()))?;
        let named = keypair::verify_url(&signed, &stored).map_err(|e| Error::KeyTest(e.to_string()))?;
        if named != key.key_pair_id {
            return Err(Error::KeyTest(format!("the signed URL names {named}, not {}", key.key_pair_id)));
        }
        let detail = format!(
            "a canned-policy URL signed with the pending private key verifies with CloudFront's copy of {}, which is in {group}",
            key.key_pair_id
        );
        report.push(Action::new(
            format!("{}/{}", secret.name, r.token),
            Verb::TestKey.as_str(),
            Outcome::Applied,
            detail,
        ));
        Ok(())
    }

    /// finishSecret: AWSCURRENT moves to the version; then the new key signs from now, which starts the grace period
    /// of the key it replaced. An answer lost after the move is recognised on a re-read.
    async fn finish_secret(
        &self,
        r: &Rotation,
        secret: &Secret,
        group: &str,
        ctx: &Context,
        may: &Permit,
        report: &mut Report,
    ) -> Result<(), Error> {
        // What testSecret proved may have changed since (a console edit, the sweep, a replayed earlier step): the key
        // signers switch to must be in CloudFront and in the group at the moment they switch.
        let (key, _) = self.pending_in_group(secret, &r.token, group).await?;
        let previous = secret.staged(CURRENT).map(String::from);
        if let Err(e) =
            secrets::make_current(&self.secretsmanager, &secret.arn, &r.token, previous.as_deref(), may).await
        {
            // The SDK's retry of a move whose answer was lost finds the label moved, and is refused for naming the
            // old version: the move is this call's.
            let again = secrets::describe(&self.secretsmanager, &secret.arn).await?;
            if again.staged(CURRENT) != Some(r.token.as_str()) {
                return Err(e);
            }
        }
        self.signs_from_now(ctx, secret, &r.token, group).await?;
        let grace = Duration::from_secs(u64::from(self.settings.grace_hours) * 3600);
        let until = rfc3339(ctx.now + grace);
        let detail = match &previous {
            Some(old) => format!(
                "version {} is {CURRENT}: key {} signs from now; version {old} is AWSPREVIOUS, and its key may leave {group} from {until} (GRACE_HOURS)",
                r.token, key.key_pair_id
            ),
            None => format!("version {} is {CURRENT}: key {} signs from now", r.token, key.key_pair_id),
        };
        report.push(Action::new(
            format!("{}/{}", secret.name, r.token),
            Verb::MakeCurrent.as_str(),
            Outcome::Applied,
            detail,
        ));
        Ok(())
    }

    /// Records that the key of the version `token` (AWSCURRENT now) signs for `group` from now, unless a run already
    /// did: the moment the grace period of the key it replaced counts from. Done after the move, never before, so the
    /// mark is never earlier than the switch; a run that died between the two is finished by the step's retry.
    async fn signs_from_now(&self, ctx: &Context, secret: &Secret, token: &str, group: &str) -> Result<(), Error> {
        let Some(value) = secrets::value(&self.secretsmanager, &secret.arn, token, CURRENT).await? else {
            return Ok(());
        };
        let Ok(key) = SigningKey::parse(&value) else { return Ok(()) };
        match marks::joined(&ctx.leases, group, &key.key_pair_id).await? {
            Some(at) if at.is_finite() => Ok(()),
            _ => marks::put_joined(&ctx.leases, group, &key.key_pair_id, now_secs()).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use shared::config::{FromLookup, Lookup};

    use super::*;

    const TOKEN: &str = "c2f9e0d1-1111-4222-8333-444455556666";

    fn settings() -> Settings {
        Settings::from_lookup(&Lookup::from_pairs(&[("KEY_GROUP_IDS", "g1")])).unwrap()
    }

    fn secret(tags: &[(&str, &str)], stages: &[&str], enabled: bool) -> Secret {
        Secret {
            arn: "arn:aws:secretsmanager:us-east-1:123456789012:secret:signing-AbCdEf".into(),
            name: "signing".into(),
            rotation_enabled: enabled,
            tags: tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            versions: HashMap::from([
                (TOKEN.to_string(), stages.iter().map(|s| s.to_string()).collect()),
                ("old".to_string(), vec![CURRENT.to_string()]),
            ]),
        }
    }

    fn step(token: &str) -> Rotation {
        Rotation {
            secret_id: "signing".into(),
            token: token.into(),
            step: RotationStep::SetSecret,
            rotation_token: None,
        }
    }

    const OURS: [(&str, &str); 2] = [(STACK_TAG, "prod"), (GROUP_TAG, "g1")];

    #[test]
    fn given_this_deployments_secret_with_a_pending_version_when_checked_then_the_step_goes_on_for_its_group() {
        let checked = check(&secret(&OURS, &[PENDING], true), &step(TOKEN), &settings(), "prod").unwrap();
        assert_eq!(checked, ("g1".to_string(), Stage::Pending));
        // AND a version already AWSCURRENT is a finished rotation, whatever the step
        let checked = check(&secret(&OURS, &[CURRENT, PENDING], true), &step(TOKEN), &settings(), "prod").unwrap();
        assert_eq!(checked.1, Stage::Finished);
    }

    #[test]
    fn given_a_secret_or_token_not_for_this_deployment_when_checked_then_refused_naming_the_field_and_the_rule() {
        let cases: [(Secret, &str, &str, &str); 7] = [
            (secret(&[(GROUP_TAG, "g1")], &[PENDING], true), TOKEN, "SecretId", "has no keeper:stack tag"),
            (
                secret(&[(STACK_TAG, "other"), (GROUP_TAG, "g1")], &[PENDING], true),
                TOKEN,
                "SecretId",
                "keeper:stack=other, not prod",
            ),
            (secret(&[(STACK_TAG, "prod")], &[PENDING], true), TOKEN, "SecretId", "no keeper:key-group tag"),
            (
                secret(&[(STACK_TAG, "prod"), (GROUP_TAG, "g2")], &[PENDING], true),
                TOKEN,
                "SecretId",
                "not one of KEY_GROUP_IDS",
            ),
            (secret(&OURS, &[PENDING], false), TOKEN, "SecretId", "rotation turned on"),
            (
                secret(&OURS, &[PENDING], true),
                "not-a-version",
                "ClientRequestToken",
                "is not a version of secret signing",
            ),
            (
                secret(&OURS, &["AWSPREVIOUS"], true),
                TOKEN,
                "ClientRequestToken",
                "is not AWSPENDING (its labels: AWSPREVIOUS)",
            ),
        ];
        for (secret, token, field, rule) in cases {
            let e = check(&secret, &step(token), &settings(), "prod").unwrap_err();
            assert_eq!(e.field, field, "{e}");
            assert!(e.rule.contains(rule), "{e}");
        }
    }
}
