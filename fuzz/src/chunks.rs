//! Cutting a fuzz input into the pieces a socket might deliver.

/// A raw fuzz input read as: one control byte, up to seven chunk sizes, then the data.
///
/// The low three bits of the control byte are how many size bytes follow; the high five bits
/// are flags each target reads as it likes. The data is cut into chunks whose lengths cycle
/// through the sizes (a size of 0 gives an empty chunk), so one size of 1 feeds the data one
/// byte at a time, and no sizes feed it whole.
#[derive(Debug, Clone, Copy)]
pub struct Split<'a> {
    /// Five bits for the target.
    pub flags: u8,
    sizes: &'a [u8],
    /// The bytes to feed.
    pub data: &'a [u8],
}

impl<'a> Split<'a> {
    /// Reads the control byte and the sizes; `None` if the input is too short to hold them.
    pub fn new(input: &'a [u8]) -> Option<Self> {
        let (&control, rest) = input.split_first()?;
        let count = usize::from(control & 0b111);
        if rest.len() < count {
            return None;
        }
        let (sizes, data) = rest.split_at(count);
        Some(Self {
            flags: control >> 3,
            sizes,
            data,
        })
    }

    /// The chunks, in order; they concatenate to `data`.
    pub fn chunks(&self) -> Chunks<'a> {
        Chunks {
            sizes: self.sizes,
            data: self.data,
            next: 0,
            done: false,
        }
    }
}

/// The iterator returned by [`Split::chunks`].
#[derive(Debug, Clone)]
pub struct Chunks<'a> {
    sizes: &'a [u8],
    data: &'a [u8],
    next: usize,
    done: bool,
}

impl<'a> Iterator for Chunks<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.done {
            return None;
        }
        // Without a non-zero size the data could never be used up: feed it whole.
        if self.sizes.iter().all(|&size| size == 0) {
            self.done = true;
            return Some(self.data);
        }
        let size = usize::from(self.sizes[self.next % self.sizes.len()]);
        self.next += 1;
        let (chunk, rest) = self.data.split_at(size.min(self.data.len()));
        self.data = rest;
        self.done = rest.is_empty() && size > 0;
        Some(chunk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(input: &[u8]) -> Vec<Vec<u8>> {
        Split::new(input)
            .unwrap()
            .chunks()
            .map(<[u8]>::to_vec)
            .collect()
    }

    #[test]
    fn chunks_concatenate_to_the_data() {
        assert_eq!(pieces(&[0b1000_0000, 1, 2, 3]), [vec![1, 2, 3]]);
        assert_eq!(
            pieces(&[2, 1, 2, 7, 8, 9, 10]),
            [vec![7], vec![8, 9], vec![10]]
        );
        assert_eq!(
            pieces(&[2, 0, 2, 7, 8, 9]),
            [vec![], vec![7, 8], vec![], vec![9]]
        );
        assert_eq!(pieces(&[1, 0, 7, 8]), [vec![7, 8]]);
        assert_eq!(pieces(&[1, 5]), [Vec::<u8>::new()]);
        assert!(Split::new(&[3, 1]).is_none());
        assert_eq!(Split::new(&[0b1010_1000]).unwrap().flags, 0b10101);
    }
}
