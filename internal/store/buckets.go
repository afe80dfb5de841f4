package store

import (
	"context"
	"errors"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"
)

// fullListingEvery is how often a sweep lists the bucket folders whole
// rather than only those after the last it swept.
const fullListingEvery = 24 * time.Hour

// clockSlack is how long after its end a bucket is left alone: a node
// whose clock is behind by less may still write to it.
const clockSlack = 15 * time.Minute

// hourBuckets are the hour folders of dir to sweep at now: those that
// ended more than after ago, following through (the last one swept; 0 for
// none known: then dir is listed, which also finds the records of an
// older layout directly in it). last is the newest of them.
func (s *Store) hourBuckets(ctx context.Context, dir string, through int64, after time.Duration, now time.Time) (over, legacy []string, last int64, err error) {
	last = (now.Unix() - int64((time.Hour+after)/time.Second)) / 3600
	if through > 0 {
		for h := through + 1; h <= last; h++ {
			over = append(over, dir+"/"+strconv.FormatInt(h, 10))
		}
		return over, nil, max(last, through), nil
	}
	keys, err := s.list(ctx, dir)
	if err != nil {
		return nil, nil, 0, err
	}
	for _, key := range keys {
		name := path.Base(key)
		if strings.HasSuffix(name, ".json") {
			legacy = append(legacy, key)
			continue
		}
		if h, err := strconv.ParseInt(name, 10, 64); err == nil && h >= 0 && h <= last {
			over = append(over, key)
		}
	}
	return over, legacy, last, nil
}

// sweptThrough is how far a sweep of buckets got: through the newest of
// them when all went well, else through the one before the first that
// failed (errs[i] is the outcome of buckets[i]).
func sweptThrough(buckets []string, errs []error, last, before int64) int64 {
	for i, err := range errs {
		if err != nil {
			if i == 0 {
				return before
			}
			h, _ := strconv.ParseInt(path.Base(buckets[i-1]), 10, 64)
			return h
		}
	}
	return last
}

// revocationBuckets lists the revocation folders of dir that ended at or
// before now plus after, and the records of an older layout directly in
// dir.
func (s *Store) revocationBuckets(ctx context.Context, dir string, after time.Duration, now time.Time) (over, legacy []string, err error) {
	keys, err := s.list(ctx, dir)
	if err != nil {
		return nil, nil, err
	}
	for _, key := range keys {
		name := path.Base(key)
		if strings.HasSuffix(name, ".json") {
			legacy = append(legacy, key)
			continue
		}
		if start, ok := bucketTime(name, revocationBucket); ok && !now.Before(start.Add(revocationBucket+after)) {
			over = append(over, key)
		}
	}
	return over, legacy, nil
}

// eachRecord calls fn for every record in the folder, a few at a time,
// then removes the folder (what is left in it: a storage keeps empty
// folders otherwise). fn deletes what it decides to.
func (s *Store) eachRecord(ctx context.Context, dir string, fn func(key string) error) error {
	keys, err := s.list(ctx, dir)
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		return nil
	}
	work := make(chan string)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for range sweepWorkers {
		wg.Go(func() {
			for key := range work {
				if err := fn(key); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	for _, key := range keys {
		if ctx.Err() != nil {
			break
		}
		if isRecordKey(key) {
			work <- key
		}
	}
	close(work)
	wg.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if len(errs) == 0 {
		errs = append(errs, s.remove(ctx, dir))
	}
	return errors.Join(errs...)
}

// eachRecordBelow is eachRecord for an hour's folder, whose records sit
// in sub-folders (so that no folder grows with the traffic of an hour):
// every sub-folder's records, then the hour's folder.
func (s *Store) eachRecordBelow(ctx context.Context, dir string, fn func(key string) error) error {
	subs, err := s.list(ctx, dir)
	if err != nil {
		return err
	}
	if len(subs) == 0 {
		return nil
	}
	var errs []error
	for _, sub := range subs {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if isRecordKey(sub) {
			errs = append(errs, fn(sub))
			continue
		}
		errs = append(errs, s.eachRecord(ctx, sub, fn))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return s.remove(ctx, dir)
}

// sweepWorkers is how many deletions a sweep has in flight: a network
// storage answers each in a round trip, and there may be many.
const sweepWorkers = 8
