package state

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/feedcdc/feedcdc/change"
)

// kLinks (in meta) holds the feed registry's parent/child link index as
// feedcdc run saved it when it stopped: uvarint length, the checkpoint
// stored then (JSON), the index (the feeds package's encoding, opaque here).
// Meta is per process: the record is not replicated (an index of millions
// of links is bigger than a Kafka record) and not part of Export.
var kLinks = []byte("links")

// LinkIndex is a saved parent/child link index and the checkpoint stored
// when it was saved. A run that resumes from that same checkpoint can
// restore the index instead of reading it from the source, whose link
// tables may have lost rows by cascade since.
type LinkIndex struct {
	Checkpoint change.Position
	Data       []byte
}

// PutLinkIndex stores x, replacing the saved index.
func (t *Tx) PutLinkIndex(x LinkIndex) error {
	if err := t.writable(); err != nil {
		return err
	}
	h, err := json.Marshal(x.Checkpoint)
	if err != nil {
		return err
	}
	v := binary.AppendUvarint(make([]byte, 0, binary.MaxVarintLen64+len(h)+len(x.Data)), uint64(len(h)))
	v = append(append(v, h...), x.Data...)
	if err := t.tx.Bucket(bMeta).Put(kLinks, v); err != nil {
		return fmt.Errorf("state: save the link index: %w", err)
	}
	return nil
}

// LinkIndex returns the saved index; ok is false when none is saved.
func (t *Tx) LinkIndex() (x LinkIndex, ok bool, err error) {
	v := t.tx.Bucket(bMeta).Get(kLinks)
	if v == nil {
		return x, false, nil
	}
	n, w := binary.Uvarint(v)
	if w <= 0 || n > uint64(len(v)-w) {
		return x, false, errors.New("state: the saved link index has no readable header")
	}
	if err := json.Unmarshal(v[w:w+int(n)], &x.Checkpoint); err != nil {
		return x, false, fmt.Errorf("state: the saved link index's checkpoint: %w", err)
	}
	x.Data = append([]byte(nil), v[w+int(n):]...)
	return x, true, nil
}

// DeleteLinkIndex removes the saved index, if any.
func (t *Tx) DeleteLinkIndex() error {
	if err := t.writable(); err != nil {
		return err
	}
	return t.tx.Bucket(bMeta).Delete(kLinks)
}
