# Both binaries, static, on a distroless base that runs as a non-root user.
FROM golang:1.26.8 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/iss-webhook ./cmd/iss-webhook && \
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/issctl ./cmd/issctl

FROM gcr.io/distroless/static:nonroot
COPY --from=build /out/iss-webhook /out/issctl /usr/local/bin/
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/iss-webhook"]
