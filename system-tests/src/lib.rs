//! Tests that span the whole system live in `tests/`: the pipeline end to
//! end (`e2e`), the OpenAPI document of both HTTP services (`openapi`), and
//! compose.yaml against the settings (`deploy`). This library is empty.
