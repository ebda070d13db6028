package discovery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// EC2 IMDSv2 headers and the token lifetime asked for: the token is used for two
// requests at most, so it should not outlive them by hours.
const (
	ec2TokenTTLHeader = "X-aws-ec2-metadata-token-ttl-seconds"
	ec2TokenHeader    = "X-aws-ec2-metadata-token"
	ec2TokenTTL       = "300"
	maxTokenSize      = 4096
)

// metadataClient talks to the cloud metadata services.
type metadataClient struct {
	transport *http.Transport
	client    *http.Client
	timeout   time.Duration
}

func newMetadataClient(timeout time.Duration) *metadataClient {
	// A Transport of its own has no Proxy: metadata services are link-local and must
	// never be asked through an HTTP proxy (the original used curl --noproxy '*').
	tr := &http.Transport{MaxIdleConnsPerHost: 1}
	return &metadataClient{
		transport: tr,
		client: &http.Client{
			Transport: tr,
			// No redirects: they would carry the token and Metadata-Flavor headers elsewhere.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		timeout: timeout,
	}
}

func (m *metadataClient) close() { m.transport.CloseIdleConnections() }

// fetch does one request within the per-request timeout. It returns the status and,
// for 200, the body of at most limit bytes.
func (m *metadataClient) fetch(ctx context.Context, method, target string, header http.Header, limit int64) (int, []byte, error) {
	rctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, method, target, nil)
	if err != nil {
		return 0, nil, errors.New("invalid URL")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return 0, nil, m.describe(ctx, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// drain a little so the connection can be reused for the next request
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return resp.StatusCode, nil, nil
	}
	tooLarge := fmt.Errorf("the answer is larger than %d bytes", limit)
	if resp.ContentLength > limit {
		return 0, nil, tooLarge
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return 0, nil, m.describe(ctx, err)
	}
	if int64(len(body)) > limit {
		return 0, nil, tooLarge
	}
	return resp.StatusCode, body, nil
}

// describe makes a request error short and free of URLs (the report has the URL), and
// tells a per-request timeout from the end of the whole budget.
func (m *metadataClient) describe(ctx context.Context, err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return errors.New("the discovery budget ran out before an answer came")
	case ctx.Err() != nil:
		return errors.New("discovery was cancelled")
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("no answer within %s", m.timeout)
	}
	return err
}

func httpStatus(code int) string {
	return strings.TrimSpace(fmt.Sprintf("HTTP %d %s", code, http.StatusText(code)))
}

// display is a URL as reports may show it: without a password.
func display(target string) string {
	if u, err := url.Parse(target); err == nil {
		return u.Redacted()
	}
	return target
}

// ec2 reads user-data from the EC2 instance metadata service: IMDSv2 (a session token
// from PUT /latest/api/token on every request, fetched again once on 401), falling back
// to IMDSv1 when the service refuses to hand out tokens.
func (m *metadataClient) ec2(ctx context.Context, base string) outcome {
	target := base + "/latest/user-data"
	from := display(target)
	token, err := m.ec2Token(ctx, base)
	if err != nil {
		return failed(from, "IMDSv2 token: %v", err)
	}
	for attempt := 1; ; attempt++ {
		header := http.Header{}
		if token != "" {
			header.Set(ec2TokenHeader, token)
		}
		o, code := m.get(ctx, target, header)
		switch {
		case code != http.StatusUnauthorized:
			return o
		case token == "":
			return failed(from, "%s: the service wants an IMDSv2 token but did not issue one", httpStatus(code))
		case attempt > 1:
			return o
		}
		// the token expired between PUT and GET: one fresh token, then give up
		if token, err = m.ec2Token(ctx, base); err != nil {
			return failed(from, "IMDSv2 token refresh: %v", err)
		}
	}
}

// ec2Token returns an IMDSv2 session token, or "" when the service answers the PUT
// with 403, 404 or 405, which is how IMDSv1-only services and proxies refuse it.
func (m *metadataClient) ec2Token(ctx context.Context, base string) (string, error) {
	header := http.Header{}
	header.Set(ec2TokenTTLHeader, ec2TokenTTL)
	code, body, err := m.fetch(ctx, http.MethodPut, base+"/latest/api/token", header, maxTokenSize)
	switch {
	case err != nil:
		return "", err
	case code == http.StatusForbidden, code == http.StatusNotFound, code == http.StatusMethodNotAllowed:
		return "", nil
	case code != http.StatusOK:
		return "", errors.New(httpStatus(code))
	}
	token := strings.TrimSpace(string(body))
	if token == "" {
		return "", errors.New("the service returned an empty token")
	}
	return token, nil
}

// gce reads the user-data attribute from the GCE metadata server, which answers only
// requests that carry Metadata-Flavor: Google.
func (m *metadataClient) gce(ctx context.Context, base string) outcome {
	header := http.Header{}
	header.Set("Metadata-Flavor", "Google")
	o, _ := m.get(ctx, base+"/computeMetadata/v1/instance/attributes/user-data", header)
	return o
}

// openstack reads user_data from the OpenStack metadata service.
func (m *metadataClient) openstack(ctx context.Context, base string) outcome {
	o, _ := m.get(ctx, base+"/openstack/latest/user_data", nil)
	return o
}

// get reads a document where 200 means found and 404 means the service has none. The
// HTTP status (0 if the request failed) lets EC2 handle its token expiry on top.
func (m *metadataClient) get(ctx context.Context, target string, header http.Header) (outcome, int) {
	from := display(target)
	code, body, err := m.fetch(ctx, http.MethodGet, target, header, MaxDocumentSize)
	switch {
	case err != nil:
		return failed(from, "%v", err), 0
	case code == http.StatusOK:
		return found(from, body), code
	case code == http.StatusNotFound:
		return absent(from, "no user data (%s)", httpStatus(code)), code
	}
	return failed(from, "%s", httpStatus(code)), code
}
