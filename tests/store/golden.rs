//! Golden stored records: one literal record of every stored event type (the examples of
//! `docs/events.md`, plus records for the optional fields those leave out), as a database written
//! by today's code holds them. Each must read back through the code that reads the log, to the
//! value it meant, and write back to the same JSON: a renamed, retyped or dropped serde field
//! fails here instead of silently misreading the log.

use chrono::{DateTime, Utc};
use herald_domain::document::DocumentEvent;
use herald_domain::drip::{ContactsEnrolled, EnrollmentsExited};
use herald_domain::engagement::{Classification, Engagement, EngagementType, SendsRecorded};
use herald_domain::settings::OrgSettings;
use herald_domain::suppression::{SuppressionAdded, SuppressionRemoved};
use herald_domain::{Blocker, CampaignEvent, Channel};
use herald_projections::record::EventRecord;
use serde_json::{json, Value};

/// Every event type the code writes (`CampaignEvent`, `DocumentKind::event_type`,
/// `src/sender.rs`, `src/engagements.rs`, `src/purge.rs`, `src/suppressions.rs`,
/// `src/settings.rs`, `src/sending/drip.rs`; `docs/events.md`). `ConnectionUpdated`
/// is not among them: connections have no `PUT`, so nothing writes it.
const STORED_TYPES: [&str; 33] = [
    "Created",
    "Updated",
    "Scheduled",
    "Unscheduled",
    "Launched",
    "LaunchBlocked",
    "RunSkipped",
    "Rescheduled",
    "Paused",
    "Resumed",
    "Completed",
    "SoftDeleted",
    "ContactCreated",
    "ContactUpdated",
    "ContactDeleted",
    "AudienceCreated",
    "AudienceUpdated",
    "AudienceDeleted",
    "TemplateCreated",
    "TemplateUpdated",
    "TemplateDeleted",
    "ConnectionCreated",
    "ConnectionDeleted",
    "SendsRecorded",
    "EngagementRecorded",
    "Purged",
    "SuppressionAdded",
    "SuppressionRemoved",
    "SettingsUpdated",
    "ContactsEnrolled",
    "EnrollmentsExited",
    "TestSent",
    "RunReported",
];

/// The stored records, literally.
const GOLDEN: &[&str] = &[
    r##"{
  "eventId": "01a21c65-96d6-76a8-9f82-f23ab95de74d",
  "streamId": "campaign-acme:camp-spring",
  "revision": 0,
  "position": 21,
  "eventType": "Created",
  "eventVersion": "1",
  "created": "2026-11-27T09:45:49.526541Z",
  "data": {
    "id": "camp-spring",
    "spec": {
      "audienceId": "aud-spring-prospects",
      "channels": [
        "email",
        "facebook",
        "sms"
      ],
      "name": "Spring 2026 Launch",
      "schedule": {
        "endAt": "2027-01-10T23:59:59Z",
        "startAt": "2026-12-27T09:00:00Z",
        "timezone": "America/New_York"
      },
      "socialProfiles": {
        "facebook": "fb-page-1"
      },
      "templateId": "tpl-spring-launch",
      "type": "multi-channel"
    }
  },
  "metadata": {
    "actor": "alice@acme.test",
    "orgId": "acme",
    "requestId": "req-create-spring",
    "correlationId": "launch-plan-7",
    "causationId": "req-create-spring"
  }
}"##,
    r##"{
  "eventId": "01a21c65-a572-76b2-9f5e-b95b696c5cdd",
  "streamId": "campaign-acme:camp-spring",
  "revision": 2,
  "position": 23,
  "eventType": "Updated",
  "eventVersion": "1",
  "created": "2026-11-27T09:45:53.266313Z",
  "data": {
    "spec": {
      "audienceId": "aud-spring-prospects",
      "channels": [
        "email",
        "facebook",
        "sms"
      ],
      "name": "Spring 2026 Launch (final)",
      "schedule": {
        "endAt": "2027-01-10T23:59:59Z",
        "startAt": "2026-12-27T09:00:00Z",
        "timezone": "America/New_York"
      },
      "socialProfiles": {
        "facebook": "fb-page-1"
      },
      "templateId": "tpl-spring-launch",
      "type": "multi-channel"
    }
  },
  "metadata": {
    "actor": "alice@acme.test",
    "orgId": "acme",
    "requestId": "21d17c4c-43ba-405e-abc8-e2ce4a18bc94",
    "correlationId": "21d17c4c-43ba-405e-abc8-e2ce4a18bc94",
    "causationId": "21d17c4c-43ba-405e-abc8-e2ce4a18bc94"
  }
}"##,
    r##"{
  "eventId": "01a21c65-96d6-76a8-9f82-f23b8791956a",
  "streamId": "campaign-acme:camp-spring",
  "revision": 1,
  "position": 22,
  "eventType": "Scheduled",
  "eventVersion": "1",
  "created": "2026-11-27T09:45:49.526541Z",
  "data": {
    "nextRunAt": "2026-12-27T09:00:00Z",
    "startAt": "2026-12-27T09:00:00Z"
  },
  "metadata": {
    "actor": "alice@acme.test",
    "orgId": "acme",
    "requestId": "req-create-spring",
    "correlationId": "launch-plan-7",
    "causationId": "req-create-spring"
  }
}"##,
    r##"{
  "eventId": "01a21c65-ca5b-714f-adb9-9b4bf21ac911",
  "streamId": "campaign-acme:camp-weekly-digest",
  "revision": 1,
  "position": 37,
  "eventType": "Scheduled",
  "eventVersion": "1",
  "created": "2026-11-27T09:46:02.715270Z",
  "data": {
    "nextRunAt": "2026-11-30T14:00:00Z",
    "startAt": "2026-11-27T09:46:02.715270798Z"
  },
  "metadata": {
    "actor": "alice@acme.test",
    "orgId": "acme",
    "requestId": "835edabd-378b-46dc-a325-7b9c8c21e1db",
    "correlationId": "835edabd-378b-46dc-a325-7b9c8c21e1db",
    "causationId": "835edabd-378b-46dc-a325-7b9c8c21e1db"
  }
}"##,
    r##"{
  "eventId": "01a21c65-b1fc-717d-b2dc-3ffc16ab8a32",
  "streamId": "campaign-acme:camp-spring",
  "revision": 3,
  "position": 24,
  "eventType": "Unscheduled",
  "eventVersion": "1",
  "created": "2026-11-27T09:45:56.476655Z",
  "data": {},
  "metadata": {
    "actor": "alice@acme.test",
    "orgId": "acme",
    "requestId": "51bc5fd5-431c-40f4-96e1-e6aade1b927a",
    "correlationId": "51bc5fd5-431c-40f4-96e1-e6aade1b927a",
    "causationId": "51bc5fd5-431c-40f4-96e1-e6aade1b927a"
  }
}"##,
    r##"{
  "eventId": "01a21c65-bfc1-74ca-9b9d-7b404964bff4",
  "streamId": "campaign-acme:camp-flash-sale",
  "revision": 1,
  "position": 33,
  "eventType": "Launched",
  "eventVersion": "1",
  "created": "2026-11-27T09:46:00.000910Z",
  "data": {
    "at": "2026-11-27T09:46:00.000910981Z",
    "channels": [
      "email"
    ],
    "reach": 2,
    "runId": "run-01a21c65-bfc0-7486-ba9e-d71f74632424",
    "skipped": [
      {
        "channel": "instagram",
        "code": "channel_not_connected"
      }
    ]
  },
  "metadata": {
    "actor": "alice@acme.test",
    "orgId": "acme",
    "requestId": "6f45e1fc-4fd0-4119-a3dd-4fd4d6735dc5",
    "correlationId": "6f45e1fc-4fd0-4119-a3dd-4fd4d6735dc5",
    "causationId": "6f45e1fc-4fd0-4119-a3dd-4fd4d6735dc5"
  }
}"##,
    r##"{
  "eventId": "01a21c65-bfb4-7241-b942-2208d8392d80",
  "streamId": "campaign-acme:camp-x-teaser",
  "revision": 1,
  "position": 31,
  "eventType": "LaunchBlocked",
  "eventVersion": "1",
  "created": "2026-11-27T09:45:59.987835Z",
  "data": {
    "blockers": [
      {
        "channel": "x",
        "code": "channel_not_connected"
      },
      {
        "channel": "linkedin",
        "code": "channel_not_connected"
      }
    ]
  },
  "metadata": {
    "actor": "alice@acme.test",
    "orgId": "acme",
    "requestId": "402eef83-08a5-42a8-b547-8247383e30a3",
    "correlationId": "402eef83-08a5-42a8-b547-8247383e30a3",
    "causationId": "402eef83-08a5-42a8-b547-8247383e30a3"
  }
}"##,
    r##"{
  "eventId": "<uuid v7>",
  "streamId": "campaign-acme:camp-weekly-digest",
  "revision": 2,
  "position": 4242,
  "eventType": "RunSkipped",
  "eventVersion": "1",
  "created": "2026-12-15T10:00:00.000000Z",
  "data": {
    "from": "2026-11-30T14:00:00Z",
    "nextRunAt": "2026-12-21T14:00:00Z",
    "to": "2026-12-15T10:00:00Z"
  },
  "metadata": {
    "actor": "<scheduler actor, not decided>",
    "orgId": "acme",
    "requestId": "<id>",
    "correlationId": "<id>",
    "causationId": "<id>"
  }
}"##,
    r##"{
  "eventId": "01a21c65-ca3f-71d6-a226-2e89e753809a",
  "streamId": "campaign-acme:camp-flash-sale",
  "revision": 3,
  "position": 35,
  "eventType": "Rescheduled",
  "eventVersion": "1",
  "created": "2026-11-27T09:46:02.686657Z",
  "data": {
    "nextRunAt": "2026-11-30T08:00:00Z"
  },
  "metadata": {
    "actor": "alice@acme.test",
    "orgId": "acme",
    "requestId": "6d618c30-642b-4670-8466-8f6f34bf5ef4",
    "correlationId": "6d618c30-642b-4670-8466-8f6f34bf5ef4",
    "causationId": "6d618c30-642b-4670-8466-8f6f34bf5ef4"
  }
}"##,
    r##"{
  "eventId": "01a21c65-b232-71c2-a349-97fc4e7ca4e0",
  "streamId": "campaign-acme:camp-spring",
  "revision": 5,
  "position": 26,
  "eventType": "Paused",
  "eventVersion": "1",
  "created": "2026-11-27T09:45:56.530762Z",
  "data": {},
  "metadata": {
    "actor": "alice@acme.test",
    "orgId": "acme",
    "requestId": "d98a5b14-efc6-44be-91a0-36e32124e766",
    "correlationId": "d98a5b14-efc6-44be-91a0-36e32124e766",
    "causationId": "d98a5b14-efc6-44be-91a0-36e32124e766"
  }
}"##,
    r##"{
  "eventId": "01a21c65-b244-7375-ab09-f923599929a1",
  "streamId": "campaign-acme:camp-spring",
  "revision": 6,
  "position": 27,
  "eventType": "Resumed",
  "eventVersion": "1",
  "created": "2026-11-27T09:45:56.548398Z",
  "data": {},
  "metadata": {
    "actor": "alice@acme.test",
    "orgId": "acme",
    "requestId": "5adc729e-42cf-4884-864a-3e638f12702f",
    "correlationId": "5adc729e-42cf-4884-864a-3e638f12702f",
    "causationId": "5adc729e-42cf-4884-864a-3e638f12702f"
  }
}"##,
    r##"{
  "eventId": "01a21c65-b259-708a-b335-45a92baa6900",
  "streamId": "campaign-acme:camp-spring",
  "revision": 7,
  "position": 28,
  "eventType": "Completed",
  "eventVersion": "1",
  "created": "2026-11-27T09:45:56.569171Z",
  "data": {},
  "metadata": {
    "actor": "alice@acme.test",
    "orgId": "acme",
    "requestId": "dd91a1d4-e996-41ee-9539-9bc15a8f7e38",
    "correlationId": "dd91a1d4-e996-41ee-9539-9bc15a8f7e38",
    "causationId": "dd91a1d4-e996-41ee-9539-9bc15a8f7e38"
  }
}"##,
    r##"{
  "eventId": "01a21c65-b27c-747d-ab9f-064e62f296c6",
  "streamId": "campaign-acme:camp-spring",
  "revision": 8,
  "position": 29,
  "eventType": "SoftDeleted",
  "eventVersion": "1",
  "created": "2026-11-27T09:45:56.604149Z",
  "data": {},
  "metadata": {
    "actor": "alice@acme.test",
    "orgId": "acme",
    "requestId": "8fdd6163-d66a-49e6-8a91-f390619c37ef",
    "correlationId": "8fdd6163-d66a-49e6-8a91-f390619c37ef",
    "causationId": "8fdd6163-d66a-49e6-8a91-f390619c37ef"
  }
}"##,
    r##"{
  "eventId": "01a21c65-7714-773b-b9ef-cfda324b1366",
  "streamId": "contact-acme:ct-ann",
  "revision": 0,
  "position": 14,
  "eventType": "ContactCreated",
  "eventVersion": "1",
  "created": "2026-11-27T09:45:41.396329Z",
  "data": {
    "body": {
      "attributes": {
        "plan": "pro",
        "score": 80
      },
      "email": "ann@example.com",
      "firstName": "Ann",
      "lastName": "Lee",
      "phone": "+14155550100",
      "tags": [
        "prospect"
      ],
      "timezone": "America/New_York",
      "unsubscribed": {}
    },
    "id": "ct-ann"
  },
  "metadata": {
    "actor": "alice@acme.test",
    "orgId": "acme",
    "requestId": "086f6fae-84df-4d8c-ae5f-171025488346",
    "correlationId": "onboarding-42",
    "causationId": "086f6fae-84df-4d8c-ae5f-171025488346"
  }
}"##,
    r##"{
  "eventId": "01a21c65-7723-7067-8f95-0f16b640a2c6",
  "streamId": "contact-acme:ct-ann",
  "revision": 1,
  "position": 15,
  "eventType": "ContactUpdated",
  "eventVersion": "1",
  "created": "2026-11-27T09:45:41.411305Z",
  "data": {
    "body": {
      "attributes": {
        "plan": "pro",
        "score": 95
      },
      "email": "ann@example.com",
      "firstName": "Ann",
      "lastName": "Lee",
      "phone": "+14155550100",
      "tags": [
        "prospect",
        "vip"
      ],
      "timezone": "America/New_York",
      "unsubscribed": {}
    }
  },
  "metadata": {
    "actor": "alice@acme.test",
    "orgId": "acme",
    "requestId": "d6a10018-f926-48cf-8682-a04ea28fcc02",
    "correlationId": "d6a10018-f926-48cf-8682-a04ea28fcc02",
    "causationId": "d6a10018-f926-48cf-8682-a04ea28fcc02"
  }
}"##,
    r##"{
  "eventId": "01a21c65-88b1-703d-ac0e-30274fb9746c",
  "streamId": "contact-acme:ct-01a21c65-7736-7120-91f5-2c19e7cc260c",
  "revision": 1,
  "position": 20,
  "eventType": "ContactUpdated",
  "eventVersion": "1",
  "created": "2026-11-27T09:45:45.905451Z",
  "data": {
    "body": {
      "attributes": {},
      "email": "BOB@example.com",
      "firstName": "Robert",
      "tags": [
        "vip"
      ],
      "unsubscribed": {}
    }
  },
  "metadata": {
    "actor": "alice@acme.test",
    "orgId": "acme",
    "requestId": "d1c25441-8653-427b-9c2a-52e58d36de08",
    "correlationId": "d1c25441-8653-427b-9c2a-52e58d36de08",
    "causationId": "d1c25441-8653-427b-9c2a-52e58d36de08"
  }
}"##,
    r##"{
  "eventId": "01a21c65-8034-70ef-af8d-62eabb1242e9",
  "streamId": "contact-acme:ct-01a21c65-774d-738c-a5c7-a4eb2c45f0fc",
  "revision": 1,
  "position": 19,
  "eventType": "ContactDeleted",
  "eventVersion": "1",
  "created": "2026-11-27T09:45:43.732464Z",
  "data": {},
  "metadata": {
    "actor": "alice@acme.test",
    "orgId": "acme",
    "requestId": "e6a2b3b8-8573-4f85-a2bb-1f5b7489874c",
    "correlationId": "e6a2b3b8-8573-4f85-a2bb-1f5b7489874c",
    "causationId": "e6a2b3b8-8573-4f85-a2bb-1f5b7489874c"
  }
}"##,
    r##"{
  "eventId": "01a21c65-76dc-73b9-9983-0e788cec9686",
  "streamId": "audience-acme:aud-spring-prospects",
  "revision": 0,
  "position": 10,
  "eventType": "AudienceCreated",
  "eventVersion": "1",
  "created": "2026-11-27T09:45:41.340857Z",
  "data": {
    "body": {
      "filter": {
        "datatype": "contact",
        "where": {
          "tags": {
            "$in": [
              "prospect",
              "vip"
            ]
          }
        }
      },
      "name": "Spring prospects",
      "type": "dynamic"
    },
    "id": "aud-spring-prospects"
  },
  "metadata": {
    "actor": "alice@acme.test",
    "orgId": "acme",
    "requestId": "45c52183-18af-4858-b3f2-c5ef69713cc7",
    "correlationId": "45c52183-18af-4858-b3f2-c5ef69713cc7",
    "causationId": "45c52183-18af-4858-b3f2-c5ef69713cc7"
  }
}"##,
    r##"{
  "eventId": "01a21c65-76e9-737e-bad8-a3e2d17570f4",
  "streamId": "audience-acme:aud-spring-prospects",
  "revision": 1,
  "position": 11,
  "eventType": "AudienceUpdated",
  "eventVersion": "1",
  "created": "2026-11-27T09:45:41.353309Z",
  "data": {
    "body": {
      "filter": {
        "datatype": "contact",
        "where": {
          "tags": {
            "$in": [
              "prospect",
              "vip"
            ]
          },
          "unsubscribed.email": {
            "$ne": true
          }
        }
      },
      "name": "Spring prospects (opted in)",
      "type": "dynamic"
    }
  },
  "metadata": {
    "actor": "alice@acme.test",
    "orgId": "acme",
    "requestId": "9cb6d01e-44ab-4316-8062-ebb0fdb16943",
    "correlationId": "9cb6d01e-44ab-4316-8062-ebb0fdb16943",
    "causationId": "9cb6d01e-44ab-4316-8062-ebb0fdb16943"
  }
}"##,
    r##"{
  "eventId": "01a21c65-7705-7087-9110-392bd4d8a1d8",
  "streamId": "audience-acme:aud-old",
  "revision": 1,
  "position": 13,
  "eventType": "AudienceDeleted",
  "eventVersion": "1",
  "created": "2026-11-27T09:45:41.381449Z",
  "data": {},
  "metadata": {
    "actor": "alice@acme.test",
    "orgId": "acme",
    "requestId": "aca87194-bd90-42c1-8e91-92ba2421ff2f",
    "correlationId": "aca87194-bd90-42c1-8e91-92ba2421ff2f",
    "causationId": "aca87194-bd90-42c1-8e91-92ba2421ff2f"
  }
}"##,
    r##"{
  "eventId": "01a21c65-6aa6-75bc-9725-829671606294",
  "streamId": "template-acme:tpl-spring-launch",
  "revision": 0,
  "position": 6,
  "eventType": "TemplateCreated",
  "eventVersion": "1",
  "created": "2026-11-27T09:45:38.214943Z",
  "data": {
    "body": {
      "email": {
        "html": "<p>Spring is here, {{ contact.firstName }}!</p><a href=\"{{ unsubscribeUrl }}\">Unsubscribe</a>",
        "subject": "Hi {{ contact.firstName }}",
        "text": "Spring is here, {{ contact.firstName }}!"
      },
      "name": "Spring launch",
      "sms": {
        "body": "Spring is here! Reply STOP to opt out."
      },
      "social": {
        "link": "https://acme.test/spring",
        "text": "Spring 2026 is here"
      }
    },
    "id": "tpl-spring-launch"
  },
  "metadata": {
    "actor": "alice@acme.test",
    "orgId": "acme",
    "requestId": "7baf86ad-8664-4934-bb67-216c9c8c9dd5",
    "correlationId": "7baf86ad-8664-4934-bb67-216c9c8c9dd5",
    "causationId": "7baf86ad-8664-4934-bb67-216c9c8c9dd5"
  }
}"##,
    r##"{
  "eventId": "01a21c65-6ab7-730c-b8b2-edec1b57dbaf",
  "streamId": "template-acme:tpl-spring-launch",
  "revision": 1,
  "position": 7,
  "eventType": "TemplateUpdated",
  "eventVersion": "1",
  "created": "2026-11-27T09:45:38.231323Z",
  "data": {
    "body": {
      "email": {
        "html": "<p>Spring is here, {{ contact.firstName }}!</p><a href=\"{{ unsubscribeUrl }}\">Unsubscribe</a>",
        "subject": "{{ contact.firstName }}, spring is here",
        "text": "Spring is here, {{ contact.firstName }}!"
      },
      "name": "Spring launch v2",
      "sms": {
        "body": "Spring is here! Reply STOP to opt out."
      },
      "social": {
        "link": "https://acme.test/spring",
        "text": "Spring 2026 is here"
      }
    }
  },
  "metadata": {
    "actor": "alice@acme.test",
    "orgId": "acme",
    "requestId": "1a0a2bbe-a200-49a3-9263-12bdf5925cf6",
    "correlationId": "1a0a2bbe-a200-49a3-9263-12bdf5925cf6",
    "causationId": "1a0a2bbe-a200-49a3-9263-12bdf5925cf6"
  }
}"##,
    r##"{
  "eventId": "01a21c65-6ae3-7554-9152-6c7aae848bce",
  "streamId": "template-acme:tpl-draft",
  "revision": 1,
  "position": 9,
  "eventType": "TemplateDeleted",
  "eventVersion": "1",
  "created": "2026-11-27T09:45:38.274974Z",
  "data": {},
  "metadata": {
    "actor": "alice@acme.test",
    "orgId": "acme",
    "requestId": "6ca74158-bfb1-4d2f-8a82-64cd10538d8c",
    "correlationId": "6ca74158-bfb1-4d2f-8a82-64cd10538d8c",
    "causationId": "6ca74158-bfb1-4d2f-8a82-64cd10538d8c"
  }
}"##,
    r##"{
  "eventId": "01a21c65-5db2-722e-8b1f-625c9c553266",
  "streamId": "connection-acme:conn-fb-sandbox",
  "revision": 0,
  "position": 3,
  "eventType": "ConnectionCreated",
  "eventVersion": "1",
  "created": "2026-11-27T09:45:34.898768Z",
  "data": {
    "body": {
      "label": "Facebook sandbox",
      "platform": "facebook",
      "profiles": [
        {
          "handle": "acme",
          "id": "fb-page-1",
          "name": "Acme"
        }
      ],
      "settings": {},
      "vendor": "sandbox"
    },
    "id": "conn-fb-sandbox"
  },
  "metadata": {
    "actor": "alice@acme.test",
    "orgId": "acme",
    "requestId": "4103b154-0354-470b-871c-1dfac1aa21f8",
    "correlationId": "4103b154-0354-470b-871c-1dfac1aa21f8",
    "causationId": "4103b154-0354-470b-871c-1dfac1aa21f8"
  }
}"##,
    r##"{
  "eventId": "01a21c65-6a98-7092-98af-459d919275c2",
  "streamId": "connection-acme:conn-sendgrid",
  "revision": 1,
  "position": 5,
  "eventType": "ConnectionDeleted",
  "eventVersion": "1",
  "created": "2026-11-27T09:45:38.200477Z",
  "data": {},
  "metadata": {
    "actor": "alice@acme.test",
    "orgId": "acme",
    "requestId": "e0455739-676f-48d9-bcd5-be989c84344d",
    "correlationId": "e0455739-676f-48d9-bcd5-be989c84344d",
    "causationId": "e0455739-676f-48d9-bcd5-be989c84344d"
  }
}"##,
    r##"{
  "eventId": "01a21d0c-1d46-72cb-96e7-308a73abb4d1",
  "streamId": "run-acme:camp-spring:run-01a21d0c-1d3f-7623-ad73-4a4390278aed",
  "revision": 0,
  "position": 7,
  "eventType": "SendsRecorded",
  "eventVersion": "1",
  "created": "2026-11-27T12:47:42.918516Z",
  "data": {
    "at": "2026-11-27T12:47:42.918516725Z",
    "campaignId": "camp-spring",
    "channel": "email",
    "delivered": true,
    "runId": "run-01a21d0c-1d3f-7623-ad73-4a4390278aed",
    "sent": [
      "ct-ada"
    ]
  },
  "metadata": {
    "actor": "herald:sender",
    "orgId": "acme",
    "requestId": "",
    "correlationId": "run-01a21d0c-1d3f-7623-ad73-4a4390278aed",
    "causationId": "run-01a21d0c-1d3f-7623-ad73-4a4390278aed"
  }
}"##,
    r##"{
  "eventId": "01a21d0c-799b-7256-8f5b-60aca7bda4b9",
  "streamId": "delivery-acme:camp-spring:run-01a21d0c-66ae-7457-aea1-058638dc9ac4:ct-ada:email",
  "revision": 0,
  "position": 9,
  "eventType": "EngagementRecorded",
  "eventVersion": "1",
  "created": "2026-11-27T12:48:06.539858Z",
  "data": {
    "campaignId": "camp-spring",
    "channel": "email",
    "classification": "human",
    "contactId": "ct-ada",
    "occurredAt": "2026-11-27T12:48:06.539807637Z",
    "runId": "run-01a21d0c-66ae-7457-aea1-058638dc9ac4",
    "source": "tracking",
    "type": "open"
  },
  "metadata": {
    "actor": "tracking:open",
    "orgId": "acme",
    "requestId": "cd0dbed2-fdf5-4d93-8664-19567297ec26",
    "correlationId": "cd0dbed2-fdf5-4d93-8664-19567297ec26",
    "causationId": "cd0dbed2-fdf5-4d93-8664-19567297ec26"
  }
}"##,
    r##"{
  "eventId": "01a21d0c-2f81-7338-8ca4-4db7a7646749",
  "streamId": "delivery-acme:camp-spring:-:ct-ada:email",
  "revision": 0,
  "position": 9,
  "eventType": "EngagementRecorded",
  "eventVersion": "1",
  "created": "2026-11-27T12:47:47.585199Z",
  "data": {
    "campaignId": "camp-spring",
    "channel": "email",
    "classification": "human",
    "contactId": "ct-ada",
    "currency": "EUR",
    "externalId": "order-1001",
    "occurredAt": "2026-11-27T12:47:47.584993603Z",
    "source": "api",
    "type": "conversion",
    "value": "49.9"
  },
  "metadata": {
    "actor": "alice@acme.test",
    "orgId": "acme",
    "requestId": "7377b26d-b944-4f1a-8e1a-8e7743f36cfb",
    "correlationId": "7377b26d-b944-4f1a-8e1a-8e7743f36cfb",
    "causationId": "7377b26d-b944-4f1a-8e1a-8e7743f36cfb"
  }
}"##,
    r##"{
  "eventId": "01a21d0c-399a-701e-9280-6907125ac38d",
  "streamId": "audit-acme",
  "revision": 0,
  "position": 11,
  "eventType": "Purged",
  "eventVersion": "1",
  "created": "2026-11-27T12:47:50.170368Z",
  "data": {
    "at": "2026-11-27T12:47:50.170368Z",
    "campaignIds": [
      "camp-spring"
    ],
    "eventsRemoved": 6,
    "jobId": "purge-01a21d0c-3997-7334-a467-7b0ca9729b16"
  },
  "metadata": {
    "actor": "alice@acme.test",
    "orgId": "acme",
    "requestId": "purge-01a21d0c-3997-7334-a467-7b0ca9729b16",
    "correlationId": "purge-01a21d0c-3997-7334-a467-7b0ca9729b16",
    "causationId": "purge-01a21d0c-3997-7334-a467-7b0ca9729b16"
  }
}"##,
    r##"{
  "eventId": "01a21c65-c000-7000-8000-000000000001",
  "streamId": "campaign-acme:camp-weekly-digest",
  "revision": 2,
  "position": 40,
  "eventType": "Launched",
  "eventVersion": "1",
  "created": "2026-11-30T14:00:00.100000Z",
  "data": {
    "at": "2026-11-30T14:00:00Z",
    "channels": [
      "email",
      "sms"
    ],
    "nextRunAt": "2026-12-07T14:00:00Z",
    "reach": 12,
    "runId": "run-weekly-1",
    "skipped": [
      {
        "code": "template_missing"
      }
    ]
  },
  "metadata": {
    "actor": "herald-scheduler",
    "orgId": "acme",
    "requestId": "job-launch-1",
    "correlationId": "job-launch-1",
    "causationId": "job-launch-1"
  }
}"##,
    r##"{
  "eventId": "01a21c65-c000-7000-8000-000000000002",
  "streamId": "campaign-acme:camp-weekly-digest",
  "revision": 3,
  "position": 41,
  "eventType": "RunSkipped",
  "eventVersion": "1",
  "created": "2026-12-07T14:00:00.100000Z",
  "data": {
    "blockers": [
      {
        "channel": "email",
        "code": "channel_not_connected"
      }
    ],
    "from": "2026-12-07T14:00:00Z",
    "to": "2026-12-07T14:00:00Z",
    "nextRunAt": "2026-12-14T14:00:00Z"
  },
  "metadata": {
    "actor": "herald-scheduler",
    "orgId": "acme",
    "requestId": "job-launch-2",
    "correlationId": "job-launch-2",
    "causationId": "job-launch-2"
  }
}"##,
    r##"{
  "eventId": "01a21c65-c000-7000-8000-000000000003",
  "streamId": "campaign-acme:camp-weekly-digest",
  "revision": 5,
  "position": 43,
  "eventType": "Resumed",
  "eventVersion": "1",
  "created": "2026-12-08T10:00:00.100000Z",
  "data": {
    "nextRunAt": "2026-12-14T14:00:00Z"
  },
  "metadata": {
    "actor": "alice@acme.test",
    "orgId": "acme",
    "requestId": "req-golden",
    "correlationId": "req-golden",
    "causationId": "req-golden"
  }
}"##,
    r##"{
  "eventId": "01a21c65-c000-7000-8000-000000000004",
  "streamId": "campaign-acme:camp-flash-sale",
  "revision": 4,
  "position": 44,
  "eventType": "Rescheduled",
  "eventVersion": "1",
  "created": "2026-12-08T10:00:00.200000Z",
  "data": {
    "nextRunAt": null
  },
  "metadata": {
    "actor": "alice@acme.test",
    "orgId": "acme",
    "requestId": "req-golden",
    "correlationId": "req-golden",
    "causationId": "req-golden"
  }
}"##,
    r##"{
  "eventId": "01a21c65-c000-7000-8000-000000000005",
  "streamId": "run-acme:camp-spring:run-2",
  "revision": 0,
  "position": 45,
  "eventType": "SendsRecorded",
  "eventVersion": "1",
  "created": "2026-12-08T10:00:00.300000Z",
  "data": {
    "at": "2026-12-08T10:00:00.300Z",
    "bounced": [
      "ct-bob"
    ],
    "campaignId": "camp-spring",
    "channel": "sms",
    "delivered": false,
    "failed": [
      "ct-cy"
    ],
    "runId": "run-2",
    "sent": [
      "ct-ada",
      "profile:fb-page-1"
    ]
  },
  "metadata": {
    "actor": "herald:sender",
    "orgId": "acme",
    "requestId": "",
    "correlationId": "",
    "causationId": ""
  }
}"##,
    r##"{
  "eventId": "01a21c65-c000-7000-8000-000000000006",
  "streamId": "delivery-acme:camp-spring:run-2:ct-ada:email",
  "revision": 1,
  "position": 46,
  "eventType": "EngagementRecorded",
  "eventVersion": "1",
  "created": "2026-12-08T10:00:00.400000Z",
  "data": {
    "campaignId": "camp-spring",
    "channel": "email",
    "classification": "machine",
    "contactId": "ct-ada",
    "link": "https://acme.test/spring",
    "occurredAt": "2026-12-08T10:00:00.400Z",
    "runId": "run-2",
    "source": "tracking",
    "type": "click"
  },
  "metadata": {
    "actor": "tracking:click",
    "orgId": "acme",
    "requestId": "req-golden",
    "correlationId": "req-golden",
    "causationId": "req-golden"
  }
}"##,
    r##"{
  "eventId": "01a21c65-c000-7000-8000-000000000007",
  "streamId": "delivery-acme:camp-spring:run-2:ct-bob:email",
  "revision": 0,
  "position": 47,
  "eventType": "EngagementRecorded",
  "eventVersion": "1",
  "created": "2026-12-08T10:00:00.500000Z",
  "data": {
    "campaignId": "camp-spring",
    "channel": "email",
    "classification": "human",
    "contactId": "ct-bob",
    "externalId": "sg-evt-1",
    "occurredAt": "2026-12-08T10:00:00Z",
    "reason": "mailbox full",
    "runId": "run-2",
    "source": "sendgrid",
    "type": "bounce"
  },
  "metadata": {
    "actor": "webhook:sendgrid",
    "orgId": "acme",
    "requestId": "req-golden",
    "correlationId": "req-golden",
    "causationId": "req-golden"
  }
}"##,
    r##"{
  "eventId": "01a21c65-c000-7000-8000-000000000008",
  "streamId": "delivery-acme:camp-spring:-:-:facebook",
  "revision": 0,
  "position": 48,
  "eventType": "EngagementRecorded",
  "eventVersion": "1",
  "created": "2026-12-08T10:00:00.600000Z",
  "data": {
    "campaignId": "camp-spring",
    "channel": "facebook",
    "classification": "human",
    "count": 1200,
    "occurredAt": "2026-12-08T10:00:00Z",
    "source": "api",
    "type": "impression"
  },
  "metadata": {
    "actor": "alice@acme.test",
    "orgId": "acme",
    "requestId": "req-golden",
    "correlationId": "req-golden",
    "causationId": "req-golden"
  }
}"##,
    r##"{
  "eventId": "01a21c65-c000-7000-8000-000000000009",
  "streamId": "suppression-acme:email:ann@acme.test",
  "revision": 0,
  "position": 49,
  "eventType": "SuppressionAdded",
  "eventVersion": "1",
  "created": "2026-12-08T10:05:00.123456Z",
  "data": {
    "address": "ann@acme.test",
    "at": "2026-12-08T10:05:00.123456789Z",
    "channel": "email",
    "reason": "manual",
    "source": "api"
  },
  "metadata": {
    "actor": "alice@acme.test",
    "orgId": "acme",
    "requestId": "req-golden",
    "correlationId": "req-golden",
    "causationId": "req-golden"
  }
}"##,
    r##"{
  "eventId": "01a21c65-c000-7000-8000-000000000010",
  "streamId": "suppression-acme:email:ann@acme.test",
  "revision": 1,
  "position": 50,
  "eventType": "SuppressionRemoved",
  "eventVersion": "1",
  "created": "2026-12-08T10:06:00.654321Z",
  "data": {
    "address": "ann@acme.test",
    "at": "2026-12-08T10:06:00.654321Z",
    "channel": "email"
  },
  "metadata": {
    "actor": "alice@acme.test",
    "orgId": "acme",
    "requestId": "req-golden",
    "correlationId": "req-golden",
    "causationId": "req-golden"
  }
}"##,
    r##"{
  "eventId": "01a21c65-c000-7000-8000-000000000011",
  "streamId": "settings-acme",
  "revision": 0,
  "position": 51,
  "eventType": "SettingsUpdated",
  "eventVersion": "1",
  "created": "2026-12-08T10:07:00.000001Z",
  "data": {
    "defaultTimezone": "Europe/Berlin",
    "frequencyCaps": [
      {
        "channel": "email",
        "max": 2,
        "per": "day"
      },
      {
        "channel": "*",
        "max": 5,
        "per": "week"
      }
    ],
    "quietHours": {
      "channels": [
        "sms"
      ],
      "end": "08:00",
      "start": "21:00"
    }
  },
  "metadata": {
    "actor": "alice@acme.test",
    "orgId": "acme",
    "requestId": "req-golden",
    "correlationId": "req-golden",
    "causationId": "req-golden"
  }
}"##,
    r##"{
  "eventId": "01a21c65-c000-7000-8000-000000000012",
  "streamId": "enrollment-acme:camp-renewal:01a21c65-c000-7000-8000-0000000000a1",
  "revision": 0,
  "position": 52,
  "eventType": "ContactsEnrolled",
  "eventVersion": "1",
  "created": "2026-12-08T10:08:00.000001Z",
  "data": {
    "campaignId": "camp-renewal",
    "contacts": [
      {
        "contactId": "c-ada",
        "milestone": "2027-03-01",
        "startsAt": "2027-02-22T09:00:00Z",
        "zone": "Europe/London"
      },
      {
        "contactId": "c-bob",
        "startsAt": "2026-12-08T10:08:00Z",
        "zone": "UTC"
      }
    ],
    "at": "2026-12-08T10:08:00.000001Z"
  },
  "metadata": {
    "actor": "herald:sequencer",
    "orgId": "acme",
    "requestId": "",
    "correlationId": "camp-renewal",
    "causationId": "01a21c65-c000-7000-8000-0000000000a1"
  }
}"##,
    r##"{
  "eventId": "01a21c65-c000-7000-8000-000000000013",
  "streamId": "enrollment-acme:camp-renewal:01a21c65-c000-7000-8000-0000000000a2",
  "revision": 0,
  "position": 53,
  "eventType": "EnrollmentsExited",
  "eventVersion": "1",
  "created": "2026-12-09T10:08:00.000001Z",
  "data": {
    "campaignId": "camp-renewal",
    "contacts": [
      {
        "contactId": "c-ada",
        "milestone": "2027-03-01",
        "reason": "milestone-moved"
      },
      {
        "contactId": "c-cyd",
        "reason": "converted"
      }
    ],
    "at": "2026-12-09T10:08:00.000001Z"
  },
  "metadata": {
    "actor": "herald:sequencer",
    "orgId": "acme",
    "requestId": "",
    "correlationId": "camp-renewal",
    "causationId": "01a21c65-c000-7000-8000-0000000000a2"
  }
}"##,
    r##"{
  "eventId": "01a21c65-c000-7000-8000-000000000014",
  "streamId": "testsend-acme:camp-spring:01a21c65-c000-7000-8000-0000000000a3",
  "revision": 0,
  "position": 54,
  "eventType": "TestSent",
  "eventVersion": "1",
  "created": "2026-12-09T11:00:00.000001Z",
  "data": {
    "at": "2026-12-09T11:00:00.000001Z",
    "campaignId": "camp-spring",
    "channel": "email",
    "connectionId": "conn-01a21c65-b000-7000-8000-000000000001",
    "contactId": "ct-ada",
    "providerMessageId": null,
    "templateId": "tpl-spring-launch",
    "to": "me@acme.test"
  },
  "metadata": {
    "actor": "mia@acme.test",
    "orgId": "acme",
    "requestId": "req-golden",
    "correlationId": "req-golden",
    "causationId": "req-golden"
  }
}"##,
    r##"{
  "eventId": "01a21c65-c000-7000-8000-000000000015",
  "streamId": "campaign-acme:camp-spring",
  "revision": 20,
  "position": 55,
  "eventType": "RunReported",
  "eventVersion": "1",
  "created": "2026-12-09T12:00:00.000001Z",
  "data": {
    "capped": 1,
    "runId": "run-2"
  },
  "metadata": {
    "actor": "herald-scheduler",
    "orgId": "acme",
    "requestId": "",
    "correlationId": "camp-spring",
    "causationId": ""
  }
}"##,
    r##"{
  "eventId": "01a21c65-c000-7000-8000-000000000016",
  "streamId": "run-acme:camp-spring:run-2",
  "revision": 1,
  "position": 56,
  "eventType": "SendsRecorded",
  "eventVersion": "1",
  "created": "2026-12-09T12:00:00.000002Z",
  "data": {
    "at": "2026-12-09T12:00:00.000002Z",
    "campaignId": "camp-spring",
    "capped": [
      "ct-dee"
    ],
    "channel": "email",
    "delivered": true,
    "runId": "run-2",
    "sent": []
  },
  "metadata": {
    "actor": "herald:sender",
    "orgId": "acme",
    "requestId": "",
    "correlationId": "run-2",
    "causationId": "run-2"
  }
}"##,
];

fn records() -> Vec<EventRecord> {
    GOLDEN
        .iter()
        .map(|text| {
            serde_json::from_str(text).unwrap_or_else(|e| panic!("envelope of {text}: {e}"))
        })
        .collect()
}

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

/// The typed value a record's `data` reads into, written back as JSON; `None` for `Purged`,
/// which has no reader but the log itself.
fn read_and_write_back(record: &EventRecord) -> Option<Value> {
    let data = record.data.clone();
    let kind = record.event_type.as_str();
    let written = match kind {
        "SendsRecorded" => serde_json::to_value(
            serde_json::from_value::<SendsRecorded>(data).unwrap_or_else(|e| panic!("{kind}: {e}")),
        )
        .unwrap(),
        "EngagementRecorded" => serde_json::to_value(
            serde_json::from_value::<Engagement>(data).unwrap_or_else(|e| panic!("{kind}: {e}")),
        )
        .unwrap(),
        // Audit records: nothing reads them back but the log itself.
        "Purged" | "TestSent" => return None,
        "SuppressionAdded" => serde_json::to_value(
            serde_json::from_value::<SuppressionAdded>(data)
                .unwrap_or_else(|e| panic!("{kind}: {e}")),
        )
        .unwrap(),
        "SettingsUpdated" => serde_json::to_value(
            serde_json::from_value::<OrgSettings>(data).unwrap_or_else(|e| panic!("{kind}: {e}")),
        )
        .unwrap(),
        "ContactsEnrolled" => serde_json::to_value(
            serde_json::from_value::<ContactsEnrolled>(data)
                .unwrap_or_else(|e| panic!("{kind}: {e}")),
        )
        .unwrap(),
        "EnrollmentsExited" => serde_json::to_value(
            serde_json::from_value::<EnrollmentsExited>(data)
                .unwrap_or_else(|e| panic!("{kind}: {e}")),
        )
        .unwrap(),
        "SuppressionRemoved" => serde_json::to_value(
            serde_json::from_value::<SuppressionRemoved>(data)
                .unwrap_or_else(|e| panic!("{kind}: {e}")),
        )
        .unwrap(),
        _ if kind.starts_with("Contact")
            || kind.starts_with("Audience")
            || kind.starts_with("Template")
            || kind.starts_with("Connection") =>
        {
            DocumentEvent::from_stored(kind, &data)
                .unwrap_or_else(|e| panic!("{kind}: {e}"))
                .data()
        }
        _ => {
            let event = CampaignEvent::from_stored(kind, &record.event_version, data)
                .unwrap_or_else(|e| panic!("{kind}: {e}"));
            assert_eq!(event.event_type(), kind);
            event.data()
        }
    };
    Some(written)
}

#[test]
fn there_is_a_golden_record_of_every_stored_event_type() {
    let covered: std::collections::BTreeSet<String> =
        records().into_iter().map(|r| r.event_type).collect();
    let expected: std::collections::BTreeSet<String> =
        STORED_TYPES.iter().map(|t| t.to_string()).collect();
    assert_eq!(covered, expected);
}

#[test]
fn golden_records_read_back_and_write_back_unchanged() {
    for (text, record) in GOLDEN.iter().zip(records()) {
        let literal: Value = serde_json::from_str(text).unwrap();
        assert_eq!(
            serde_json::to_value(&record).unwrap(),
            literal,
            "the envelope of {} changed",
            record.event_type
        );
        if let Some(written) = read_and_write_back(&record) {
            assert_eq!(
                written, record.data,
                "{} at position {} does not read back to what is stored",
                record.event_type, record.position
            );
        }
    }
}

#[test]
fn the_purge_tombstone_keeps_its_fields() {
    let purged = records()
        .into_iter()
        .find(|r| r.event_type == "Purged")
        .unwrap();
    assert_eq!(purged.stream_id, "audit-acme");
    assert_eq!(
        purged.data,
        json!({
            "at": "2026-11-27T12:47:50.170368Z",
            "campaignIds": ["camp-spring"],
            "eventsRemoved": 6,
            "jobId": "purge-01a21d0c-3997-7334-a467-7b0ca9729b16"
        })
    );
}

/// The upcaster contract (`docs/events.md`, "Versioning an event"): a version-1 record written in
/// today's shape reads into today's variant with every field where it was.
#[test]
fn version_1_records_read_into_the_values_they_were_written_from() {
    let by_position = |position: i64| {
        records()
            .into_iter()
            .find(|r| r.position == position)
            .unwrap_or_else(|| panic!("no golden record at {position}"))
    };
    let campaign = |position: i64| {
        let r = by_position(position);
        CampaignEvent::from_stored(&r.event_type, &r.event_version, r.data).unwrap()
    };
    assert_eq!(
        campaign(40),
        CampaignEvent::Launched {
            run_id: "run-weekly-1".into(),
            at: at("2026-11-30T14:00:00Z"),
            reach: 12,
            channels: vec![Channel::Email, Channel::Sms],
            skipped: vec![Blocker::new("template_missing")],
            next_run_at: Some(at("2026-12-07T14:00:00Z")),
        }
    );
    assert_eq!(
        campaign(41),
        CampaignEvent::RunSkipped {
            from: at("2026-12-07T14:00:00Z"),
            to: at("2026-12-07T14:00:00Z"),
            next_run_at: Some(at("2026-12-14T14:00:00Z")),
            blockers: vec![Blocker::channel_not_connected(Channel::Email)],
        }
    );
    assert_eq!(
        campaign(43),
        CampaignEvent::Resumed {
            next_run_at: Some(at("2026-12-14T14:00:00Z"))
        }
    );
    assert_eq!(
        campaign(44),
        CampaignEvent::Rescheduled { next_run_at: None }
    );
    let sends: SendsRecorded = serde_json::from_value(by_position(45).data).unwrap();
    assert_eq!(
        sends,
        SendsRecorded {
            campaign_id: "camp-spring".into(),
            run_id: "run-2".into(),
            channel: Channel::Sms,
            sent: vec!["ct-ada".into(), "profile:fb-page-1".into()],
            failed: vec!["ct-cy".into()],
            bounced: vec!["ct-bob".into()],
            capped: vec![],
            delivered: false,
            at: at("2026-12-08T10:00:00.300Z"),
        }
    );
    assert_eq!(
        campaign(55),
        CampaignEvent::RunReported {
            run_id: "run-2".into(),
            capped: 1,
            zone_fallbacks: 0,
        }
    );
    let capped: SendsRecorded = serde_json::from_value(by_position(56).data).unwrap();
    assert_eq!(capped.capped, vec!["ct-dee".to_string()]);
    assert!(capped.sent.is_empty());
    let engagement = |position: i64| -> Engagement {
        serde_json::from_value(by_position(position).data).unwrap()
    };
    let click = Engagement {
        campaign_id: "camp-spring".into(),
        run_id: Some("run-2".into()),
        contact_id: Some("ct-ada".into()),
        channel: Channel::Email,
        kind: EngagementType::Click,
        classification: Classification::Machine,
        occurred_at: at("2026-12-08T10:00:00.400Z"),
        external_id: None,
        link: Some("https://acme.test/spring".into()),
        value: None,
        currency: None,
        count: None,
        source: "tracking".into(),
        reason: None,
    };
    assert_eq!(engagement(46), click);
    assert_eq!(
        engagement(47),
        Engagement {
            contact_id: Some("ct-bob".into()),
            kind: EngagementType::Bounce,
            classification: Classification::Human,
            occurred_at: at("2026-12-08T10:00:00Z"),
            external_id: Some("sg-evt-1".into()),
            link: None,
            reason: Some("mailbox full".into()),
            source: "sendgrid".into(),
            ..click.clone()
        }
    );
    assert_eq!(
        engagement(48),
        Engagement {
            run_id: None,
            contact_id: None,
            channel: Channel::Facebook,
            kind: EngagementType::Impression,
            classification: Classification::Human,
            occurred_at: at("2026-12-08T10:00:00Z"),
            link: None,
            count: Some(1200),
            source: "api".into(),
            ..click.clone()
        }
    );
    let conversion = records()
        .into_iter()
        .find(|r| r.data["externalId"] == "order-1001")
        .unwrap();
    assert_eq!(
        serde_json::from_value::<Engagement>(conversion.data).unwrap(),
        Engagement {
            run_id: None,
            kind: EngagementType::Conversion,
            classification: Classification::Human,
            occurred_at: at("2026-11-27T12:47:47.584993603Z"),
            external_id: Some("order-1001".into()),
            link: None,
            value: Some("49.9".into()),
            currency: Some("EUR".into()),
            source: "api".into(),
            ..click
        }
    );
    let enrolled: ContactsEnrolled = serde_json::from_value(by_position(52).data).unwrap();
    assert_eq!(enrolled.contacts[0].milestone, "2027-03-01");
    assert_eq!(enrolled.contacts[0].starts_at, at("2027-02-22T09:00:00Z"));
    assert_eq!(
        enrolled.contacts[1].milestone, "",
        "no milestone outside milestone campaigns"
    );
    let exited: EnrollmentsExited = serde_json::from_value(by_position(53).data).unwrap();
    assert_eq!(exited.contacts[1].reason, "converted");
}
