//! A log checkpoint as a signed note (transparency-dev `formats/log` and C2SP signed-note): the
//! note (`<origin>\n<tree size>\n<base64 root hash>\n[extension lines\n]`), a blank line, then
//! one line per signature, `— <key name> <base64 of 4-byte key hint || signature>\n`.

use base64::Engine;

/// A signature line of a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    /// The key's name (Rekor: its host, such as `rekor.sigstore.dev`).
    pub name: String,
    /// The first 4 bytes of the key's id.
    pub key_hint: [u8; 4],
    /// The signature over the note's text.
    pub signature: Vec<u8>,
}

/// A checkpoint: what the log's key signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The exact text the signatures are over, final newline included.
    pub note: String,
    /// The log's name.
    pub origin: String,
    /// The number of entries in the tree.
    pub size: u64,
    /// The tree's root hash.
    pub root_hash: Vec<u8>,
    /// Its signatures.
    pub signatures: Vec<NoteSignature>,
}

impl Checkpoint {
    /// Parses a `checkpoint.envelope`.
    pub fn parse(envelope: &str) -> Result<Self, String> {
        let split = envelope
            .find("\n\n")
            .ok_or("the checkpoint has no blank line between its note and its signatures")?;
        let note = &envelope[..=split];
        let mut lines = note.lines();
        let origin = lines.next().filter(|l| !l.is_empty());
        let size = lines.next().and_then(|l| l.parse::<u64>().ok());
        let root = lines
            .next()
            .and_then(|l| base64::engine::general_purpose::STANDARD.decode(l).ok());
        let (Some(origin), Some(size), Some(root_hash)) = (origin, size, root) else {
            return Err(
                "the checkpoint's note is not an origin, a tree size and a base64 root hash".into(),
            );
        };
        let signatures = envelope[split + 2..]
            .lines()
            .filter(|line| !line.is_empty())
            .map(Self::signature_line)
            .collect::<Result<Vec<_>, _>>()?;
        if signatures.is_empty() {
            return Err("the checkpoint carries no signature".into());
        }
        Ok(Self {
            note: note.to_owned(),
            origin: origin.to_owned(),
            size,
            root_hash,
            signatures,
        })
    }

    fn signature_line(line: &str) -> Result<NoteSignature, String> {
        let malformed = || format!("the checkpoint signature line {line:?} is malformed");
        let rest = line.strip_prefix("\u{2014} ").ok_or_else(malformed)?;
        let (name, signature) = rest.split_once(' ').ok_or_else(malformed)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(signature)
            .map_err(|_| malformed())?;
        if name.is_empty() || bytes.len() < 5 {
            return Err(malformed());
        }
        Ok(NoteSignature {
            name: name.to_owned(),
            key_hint: [bytes[0], bytes[1], bytes[2], bytes[3]],
            signature: bytes[4..].to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A checkpoint shaped as the public Rekor writes them (its origin and key hint; the signature
    /// bytes are made up).
    const REKOR: &str = "rekor.sigstore.dev - 1193050959916656506\n43071829\nk0hxv/1G/eyaT9zQ1Y9OH8IDx8zL2mA7OzrSvFXBpFc=\n\n\u{2014} rekor.sigstore.dev wNI9ajBFAiEA7vrDHFMjW+ZmNvT2mIYj3WA1HCOgq0GIIy8iChtA1wcCIFnhA/xl+Wj7zmvSsnpPGWHaASrqr8hMQXLTc6jFUk0T\n";

    #[test]
    fn rekors_checkpoint_parses_into_note_size_root_and_signature() {
        let checkpoint = Checkpoint::parse(REKOR).unwrap();
        assert_eq!(
            checkpoint.origin,
            "rekor.sigstore.dev - 1193050959916656506"
        );
        assert_eq!(checkpoint.size, 43_071_829);
        assert_eq!(checkpoint.root_hash.len(), 32);
        assert_eq!(
            checkpoint.note,
            "rekor.sigstore.dev - 1193050959916656506\n43071829\nk0hxv/1G/eyaT9zQ1Y9OH8IDx8zL2mA7OzrSvFXBpFc=\n"
        );
        assert_eq!(checkpoint.signatures.len(), 1);
        let signature = &checkpoint.signatures[0];
        assert_eq!(signature.name, "rekor.sigstore.dev");
        // The hint is the start of the public Rekor's log id (wNI9atQG…).
        assert_eq!(signature.key_hint, [0xc0, 0xd2, 0x3d, 0x6a]);
        assert_eq!(signature.signature[0], 0x30, "a DER ECDSA signature");
    }

    #[test]
    fn malformed_checkpoints_say_what_is_wrong() {
        assert_eq!(
            Checkpoint::parse("origin\n1\nAAAA\n"),
            Err("the checkpoint has no blank line between its note and its signatures".into())
        );
        assert_eq!(
            Checkpoint::parse("origin\nlots\nAAAA\n\n\u{2014} k AAAAAAAA\n"),
            Err(
                "the checkpoint's note is not an origin, a tree size and a base64 root hash".into()
            )
        );
        assert_eq!(
            Checkpoint::parse("origin\n1\nAAAA\n\n"),
            Err("the checkpoint carries no signature".into())
        );
        assert!(
            Checkpoint::parse("origin\n1\nAAAA\n\n- k AAAAAAAA\n")
                .unwrap_err()
                .contains("malformed")
        );
    }
}
