//! The audit log's operations: reading pages (L2), anchors and verification (L3), pruning
//! with a checkpoint (L5).

use super::{Engine, check_context, check_user_id, now};
use crate::audit::{self, Account, Subject, details};
use crate::docs::{CheckpointDoc, EventDoc, PasskeyDoc, UserDoc, keys};
use crate::error::{Error, Result};
use crate::secrets::b64url;
use crate::txn::Txn;
use crate::{
    AuditAnchor, AuditEvent, AuditPage, AuditPruned, AuditQuery, ChainReport, Context, EventKind,
    Host, PruneAudit, UserRef, VerifyAudit,
};

impl Engine {
    /// A page of the user's audit events, newest first (L2).
    pub fn audit_events(
        &self,
        host: &dyn Host,
        ctx: &Context,
        req: AuditQuery,
    ) -> Result<AuditPage> {
        check_context(ctx)?;
        check_user_id(&req.user_id)?;
        let limit = req.limit.unwrap_or(50);
        if !(1..=200).contains(&limit) {
            return Err(Error::invalid("limit must be between 1 and 200"));
        }
        let mut txn = Txn::new(host);
        Account::load(&mut txn, &req.user_id)?;
        let checkpoint = txn
            .get::<CheckpointDoc>(&keys::checkpoint(&req.user_id))?
            .map_or(0, |cp| cp.seq);
        let after = req.before.map(|seq| keys::event(&req.user_id, seq));
        let page = txn.scan::<EventDoc>(&keys::events(&req.user_id), after.as_deref(), limit)?;
        let full = page.len() == limit as usize;
        let events = page
            .into_iter()
            .map(|(_, e)| audit::to_public(e))
            .collect::<Result<Vec<AuditEvent>>>()?;
        let next_before = events
            .last()
            .filter(|e| full && e.seq > checkpoint + 1)
            .map(|e| e.seq);
        Ok(AuditPage {
            events,
            next_before,
        })
    }

    /// The newest event of the user's chain, for the host to keep outside the database (L3).
    pub fn audit_anchor(
        &self,
        host: &dyn Host,
        ctx: &Context,
        req: UserRef,
    ) -> Result<AuditAnchor> {
        check_context(ctx)?;
        check_user_id(&req.user_id)?;
        let mut txn = Txn::new(host);
        let account = Account::load(&mut txn, &req.user_id)?;
        Ok(audit::anchor(&account.doc))
    }

    /// Verifies the user's audit chain (L3), against an anchor when one is given. With an
    /// anchor, a deleted user is reported as a truncated chain rather than `not_found`.
    pub fn verify_audit_chain(
        &self,
        host: &dyn Host,
        ctx: &Context,
        req: VerifyAudit,
    ) -> Result<ChainReport> {
        check_context(ctx)?;
        check_user_id(&req.user_id)?;
        if let Some(anchor) = &req.anchor
            && anchor.user_id != req.user_id
        {
            return Err(Error::invalid("the anchor names another user"));
        }
        let mut txn = Txn::new(host);
        let user = txn.get::<UserDoc>(&keys::user(&req.user_id))?;
        if user.is_none() && req.anchor.is_none() {
            return Err(Error::NotFound("user".into()));
        }
        let stored_passkeys = txn
            .scan_all::<PasskeyDoc>(&keys::passkeys(&req.user_id))?
            .into_iter()
            .map(|(_, d)| b64url(&d.credential.cred_id))
            .collect();
        let checkpoint = txn.get::<CheckpointDoc>(&keys::checkpoint(&req.user_id))?;
        audit::verify(
            host,
            &self.settings,
            Subject {
                user_id: &req.user_id,
                user: user.as_ref(),
                stored_passkeys,
                anchor: req.anchor.as_ref(),
                checkpoint,
            },
        )
    }

    /// Removes the user's events older than the retention age (L5), oldest first and at most
    /// 500 a call, keeping the chain verifiable: the checkpoint records the last pruned event,
    /// and the prune is itself an event.
    pub fn prune_audit_events(
        &self,
        host: &dyn Host,
        ctx: &Context,
        req: PruneAudit,
    ) -> Result<AuditPruned> {
        check_context(ctx)?;
        check_user_id(&req.user_id)?;
        let days = req
            .older_than_days
            .unwrap_or(self.settings.audit_retention_days);
        if !(1..=36_500).contains(&days) {
            return Err(Error::invalid(
                "older_than_days must be between 1 and 36500",
            ));
        }
        self.run(host, |txn| {
            let now = now(host)?;
            let cutoff = now.saturating_sub(u64::from(days) * 86_400_000);
            let mut account = Account::load(txn, &req.user_id)?;
            let cp_key = keys::checkpoint(&req.user_id);
            let checkpoint = txn.get::<CheckpointDoc>(&cp_key)?;
            let from = checkpoint.as_ref().map_or(0, |cp| cp.seq);
            let batch = audit::oldest_events(txn, &req.user_id, from)?;
            let fetched = batch.len();
            let old: Vec<(String, EventDoc)> = batch
                .into_iter()
                .take_while(|(_, e)| e.at < cutoff)
                .collect();
            let Some((_, last)) = old.last() else {
                return Ok(Ok(AuditPruned {
                    pruned: 0,
                    checkpoint_seq: from,
                    more: false,
                }));
            };
            let cp = audit::checkpoint_after(&self.settings, &req.user_id, last, now)?;
            let pruned = u32::try_from(old.len()).map_err(Error::internal)?;
            let more = old.len() == fetched
                && fetched == audit::PRUNE_BATCH as usize
                && cp.seq < account.doc.audit_seq;
            for (key, _) in &old {
                txn.delete(key)?;
            }
            txn.upsert(&cp_key, &cp)?;
            account.record(
                EventKind::AuditPruned,
                details!("pruned" => pruned, "through_seq" => cp.seq, "older_than_days" => days),
            );
            account.save(txn, &self.settings, ctx, now)?;
            Ok(Ok(AuditPruned {
                pruned,
                checkpoint_seq: cp.seq,
                more,
            }))
        })
    }
}
