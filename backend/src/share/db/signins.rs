//! Sign-ins (`access::signin`) kept in the same database as sessions and links, so a restart
//! keeps people signed in and an admin's revocation holds on every request.

use redb::TableDefinition;

use super::{DbError, Sessions};
use crate::access::signin::{SignIn, SignIns};

pub(super) const SIGNINS: TableDefinition<&str, &[u8]> = TableDefinition::new("sign_ins");

fn text(e: DbError) -> String {
    e.to_string()
}

impl Sessions {
    fn put_signin(&self, s: &SignIn) -> Result<(), DbError> {
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(SIGNINS)?;
            table.insert(s.id.as_str(), serde_json::to_vec(s).expect("a sign-in serialises").as_slice())?;
        }
        txn.commit()?;
        Ok(())
    }

    fn delete_signin(&self, id: &str) -> Result<bool, DbError> {
        let txn = self.db.begin_write()?;
        let existed = txn.open_table(SIGNINS)?.remove(id)?.is_some();
        txn.commit()?;
        Ok(existed)
    }
}

impl SignIns for Sessions {
    fn put(&self, s: &SignIn) -> Result<(), String> {
        self.put_signin(s).map_err(text)
    }
    fn get(&self, id: &str) -> Result<Option<SignIn>, String> {
        self.row(SIGNINS, id).map_err(text)
    }
    fn delete(&self, id: &str) -> Result<bool, String> {
        self.delete_signin(id).map_err(text)
    }
    fn all(&self) -> Result<Vec<SignIn>, String> {
        let mut all: Vec<SignIn> = self.rows(SIGNINS).map_err(text)?;
        all.sort_by(|a, b| (a.created_s, &a.id).cmp(&(b.created_s, &b.id)));
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_ins_are_kept_found_and_deleted() {
        let db = Sessions::in_memory(Default::default()).unwrap();
        let s = SignIn {
            id: "abc".into(),
            user: "alice".into(),
            groups: vec!["team-a".into()],
            created_s: 10,
            seen_s: 20,
            token_expires_s: 30,
            refresh_token: Some("r".into()),
        };
        SignIns::put(&db, &s).unwrap();
        assert_eq!(SignIns::get(&db, "abc").unwrap(), Some(s.clone()));
        assert_eq!(SignIns::all(&db).unwrap(), [s]);
        assert!(SignIns::delete(&db, "abc").unwrap());
        assert!(!SignIns::delete(&db, "abc").unwrap());
        assert_eq!(SignIns::get(&db, "abc").unwrap(), None);
    }
}
