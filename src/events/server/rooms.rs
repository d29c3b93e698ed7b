//! Room membership of one namespace: plain data keyed by socket id.

use std::collections::{HashMap, HashSet};

/// Which sockets are in which rooms, both ways round.
#[derive(Debug, Default)]
pub(crate) struct Rooms {
    members: HashMap<String, HashSet<String>>,
    by_socket: HashMap<String, HashSet<String>>,
}

impl Rooms {
    /// Puts socket `id` in `room`.
    pub(crate) fn join(&mut self, id: &str, room: &str) {
        self.members
            .entry(room.to_owned())
            .or_default()
            .insert(id.to_owned());
        self.by_socket
            .entry(id.to_owned())
            .or_default()
            .insert(room.to_owned());
    }

    /// Takes socket `id` out of `room`.
    pub(crate) fn leave(&mut self, id: &str, room: &str) {
        if let Some(members) = self.members.get_mut(room) {
            members.remove(id);
            if members.is_empty() {
                self.members.remove(room);
            }
        }
        if let Some(rooms) = self.by_socket.get_mut(id) {
            rooms.remove(room);
            if rooms.is_empty() {
                self.by_socket.remove(id);
            }
        }
    }

    /// Takes socket `id` out of every room.
    pub(crate) fn leave_all(&mut self, id: &str) {
        for room in self.by_socket.remove(id).unwrap_or_default() {
            if let Some(members) = self.members.get_mut(&room) {
                members.remove(id);
                if members.is_empty() {
                    self.members.remove(&room);
                }
            }
        }
    }

    /// Every room with a member, sorted.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn all(&self) -> Vec<String> {
        let mut rooms: Vec<String> = self.members.keys().cloned().collect();
        rooms.sort();
        rooms
    }

    /// The rooms socket `id` is in.
    pub(crate) fn rooms_of(&self, id: &str) -> Vec<String> {
        let mut rooms: Vec<String> = self
            .by_socket
            .get(id)
            .map(|rooms| rooms.iter().cloned().collect())
            .unwrap_or_default();
        rooms.sort();
        rooms
    }

    /// The sockets in any of `rooms` (every socket when `rooms` is empty), minus those in any
    /// of `except` and the socket `skip`.
    pub(crate) fn recipients(
        &self,
        rooms: &[String],
        except: &[String],
        skip: Option<&str>,
    ) -> HashSet<String> {
        let excluded: HashSet<&String> = except
            .iter()
            .filter_map(|room| self.members.get(room))
            .flatten()
            .collect();
        let keep = |id: &&String| !excluded.contains(id) && Some(id.as_str()) != skip;
        match rooms.is_empty() {
            true => self.by_socket.keys().filter(keep).cloned().collect(),
            false => rooms
                .iter()
                .filter_map(|room| self.members.get(room))
                .flatten()
                .filter(keep)
                .cloned()
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(set: HashSet<String>) -> Vec<String> {
        let mut ids: Vec<String> = set.into_iter().collect();
        ids.sort();
        ids
    }

    fn rooms() -> Rooms {
        let mut rooms = Rooms::default();
        for id in ["a", "b", "c"] {
            rooms.join(id, id);
        }
        rooms.join("a", "red");
        rooms.join("b", "red");
        rooms.join("b", "blue");
        rooms.join("c", "blue");
        rooms
    }

    #[test]
    fn recipients_by_room_except_and_skip() {
        let rooms = rooms();
        let red = ["red".to_owned()];
        let blue = ["blue".to_owned()];
        assert_eq!(sorted(rooms.recipients(&[], &[], None)), ["a", "b", "c"]);
        assert_eq!(sorted(rooms.recipients(&red, &[], None)), ["a", "b"]);
        assert_eq!(sorted(rooms.recipients(&red, &[], Some("a"))), ["b"]);
        assert_eq!(sorted(rooms.recipients(&[], &blue, None)), ["a"]);
        let both = ["red".to_owned(), "blue".to_owned()];
        assert_eq!(sorted(rooms.recipients(&both, &[], None)), ["a", "b", "c"]);
    }

    #[test]
    fn leave_and_leave_all_forget_empty_rooms() {
        let mut rooms = rooms();
        rooms.leave("a", "red");
        assert_eq!(rooms.rooms_of("a"), ["a"]);
        rooms.leave_all("b");
        assert!(rooms.rooms_of("b").is_empty());
        assert!(!rooms.members.contains_key("red"));
        assert_eq!(rooms.rooms_of("c"), ["blue", "c"]);
    }
}
