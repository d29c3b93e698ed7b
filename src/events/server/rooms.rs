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

    /// Whether some socket is in `room`.
    pub(crate) fn has_room(&self, room: &str) -> bool {
        self.members.contains_key(room)
    }

    /// Calls `each` once with every socket in any of `rooms` (every socket in some room when
    /// `rooms` is empty), minus those in any of `except` and the socket `skip`. Ids are lent,
    /// not copied; a set is built only to dedupe members of several rooms.
    pub(crate) fn recipients<'a>(
        &'a self,
        rooms: &[String],
        except: &[String],
        skip: Option<&str>,
        mut each: impl FnMut(&'a str),
    ) {
        let excluded: Vec<&HashSet<String>> = except
            .iter()
            .filter_map(|room| self.members.get(room))
            .collect();
        let keep =
            |id: &str| Some(id) != skip && !excluded.iter().any(|members| members.contains(id));
        match rooms {
            [] => self
                .by_socket
                .keys()
                .map(String::as_str)
                .filter(|id| keep(id))
                .for_each(each),
            [room] => self
                .members
                .get(room)
                .into_iter()
                .flatten()
                .map(String::as_str)
                .filter(|id| keep(id))
                .for_each(each),
            _ => {
                let mut seen = HashSet::new();
                for id in rooms
                    .iter()
                    .filter_map(|room| self.members.get(room))
                    .flatten()
                {
                    if keep(id) && seen.insert(id.as_str()) {
                        each(id);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(rooms: &Rooms, to: &[String], except: &[String], skip: Option<&str>) -> Vec<String> {
        let mut ids = Vec::new();
        rooms.recipients(to, except, skip, |id| ids.push(id.to_owned()));
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
        assert_eq!(sorted(&rooms, &[], &[], None), ["a", "b", "c"]);
        assert_eq!(sorted(&rooms, &red, &[], None), ["a", "b"]);
        assert_eq!(sorted(&rooms, &red, &[], Some("a")), ["b"]);
        assert_eq!(sorted(&rooms, &[], &blue, None), ["a"]);
        let both = ["red".to_owned(), "blue".to_owned()];
        assert_eq!(sorted(&rooms, &both, &[], None), ["a", "b", "c"]);
        assert_eq!(
            sorted(&rooms, &both, &blue, Some("a")),
            Vec::<String>::new()
        );
        assert_eq!(sorted(&rooms, &both, &["c".to_owned()], None), ["a", "b"]);
        assert!(rooms.has_room("red") && !rooms.has_room("green"));
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
