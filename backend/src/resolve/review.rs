//! RBAC asked on the API server: a SubjectAccessReview for a person (their user name and groups
//! as the identity source gave them, so it works where the API server does not trust that
//! source) and the resource podtap's viewers are bound to — by default `get` on `traffic` in
//! group `podtap.io`, which admins grant with ordinary Roles and ClusterRoles. The hub's own
//! RBAC needs `create` on `subjectaccessreviews` for this, and nothing more.

use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use kube::api::{Api, PostParams};

use crate::access::decide::{Answer, Ask, Reviewer, Reviewing};

/// What is asked: `verb` on `resource` in API group `group`.
#[derive(Clone)]
pub struct KubeReviewer {
    pub client: kube::Client,
    pub verb: String,
    pub resource: String,
    pub group: String,
}

impl KubeReviewer {
    /// `resource` as `RESOURCE.GROUP` (`traffic.podtap.io`), or a core resource (`pods`).
    pub fn new(client: kube::Client, verb: &str, resource: &str) -> Self {
        let (resource, group) = resource.split_once('.').unwrap_or((resource, ""));
        KubeReviewer { client, verb: verb.into(), resource: resource.into(), group: group.into() }
    }
}

impl Reviewer for KubeReviewer {
    fn review(&self, ask: Ask) -> Reviewing {
        let api: Api<SubjectAccessReview> = Api::all(self.client.clone());
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(ask.user),
                groups: Some(ask.groups),
                resource_attributes: Some(ResourceAttributes {
                    namespace: ask.namespace,
                    verb: Some(self.verb.clone()),
                    group: Some(self.group.clone()),
                    resource: Some(self.resource.clone()),
                    ..ResourceAttributes::default()
                }),
                ..SubjectAccessReviewSpec::default()
            },
            ..SubjectAccessReview::default()
        };
        Box::pin(async move {
            let answered = api.create(&PostParams::default(), &review).await.map_err(|e| e.to_string())?;
            let status = answered.status.ok_or("the API server answered the review without a status")?;
            let reason = status.reason.filter(|r| !r.is_empty()).unwrap_or_else(|| "allowed".into());
            Ok(Answer { allowed: status.allowed && !status.denied.unwrap_or(false), reason })
        })
    }

    fn asks(&self) -> String {
        match self.group.as_str() {
            "" => format!("{} {}", self.verb, self.resource),
            group => format!("{} {}.{group}", self.verb, self.resource),
        }
    }
}
